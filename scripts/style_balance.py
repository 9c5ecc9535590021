"""Preview the content/style/TV balance of the loss weights by optimizing one image directly.

A feed-forward network trained with weights (alpha, beta, gamma) converges towards what a
direct optimization of the same objective produces, so a few minutes on one small frame
show whether a beta/alpha ratio stylizes too little or too much, and how much a TV weight
smooths. Starts from the content image; Adam on the pixels.

    python scripts/style_balance.py CONTENT.png --out preview.png             # default weights
    python scripts/style_balance.py CONTENT.png --beta 1e-4 --out strong.png
"""

from __future__ import annotations

import argparse
from importlib import resources

import torch
import torch.nn.functional as F

from reconet.image import load_image, save_image
from reconet.losses import DEFAULT_CONTENT_LAYER, DEFAULT_STYLE_LAYERS, DEFAULT_WEIGHTS
from reconet.losses import content_loss, gram_matrix, style_loss, total_variation
from reconet.models.loss_network import build_loss_network


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("content", help="content image")
    parser.add_argument("--style", default=None, help="style image (default: the bundled candy.jpg)")
    parser.add_argument("--style-size", type=int, default=256, help="shorter side of the style image")
    parser.add_argument("--size", type=int, nargs=2, default=(144, 336), metavar=("H", "W"))
    parser.add_argument("--network", default="vgg19")
    parser.add_argument("--alpha", type=float, default=DEFAULT_WEIGHTS["alpha"])
    parser.add_argument("--beta", type=float, default=DEFAULT_WEIGHTS["beta"])
    parser.add_argument("--gamma", type=float, default=DEFAULT_WEIGHTS["gamma"])
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--lr", type=float, default=0.02)
    parser.add_argument("--out", required=True, help="where to write the optimized image")
    args = parser.parse_args()

    layers = (DEFAULT_CONTENT_LAYER, *DEFAULT_STYLE_LAYERS)
    network = build_loss_network(args.network, layers=tuple(dict.fromkeys(layers)))
    content = F.interpolate(load_image(args.content)[None], size=tuple(args.size), mode="bilinear", antialias=True)
    style = load_image(args.style or str(resources.files("reconet") / "assets" / "styles" / "candy.jpg"))[None]
    scale = args.style_size / min(style.shape[-2:])
    style = F.interpolate(style, scale_factor=scale, mode="bilinear", antialias=True).clamp(0.0, 1.0)
    with torch.no_grad():
        grams = {name: gram_matrix(f) for name, f in network(style).items() if name in DEFAULT_STYLE_LAYERS}
        target = network(content)[DEFAULT_CONTENT_LAYER]

    image = content.clone().requires_grad_(True)  # (1, 3, H, W)
    optimizer = torch.optim.Adam([image], lr=args.lr)
    print(f"{network.name}: alpha={args.alpha:g} beta={args.beta:g} gamma={args.gamma:g}")
    for step in range(args.steps):
        features = network(image.clamp(0.0, 1.0))
        terms = {
            "content": args.alpha * content_loss(features[DEFAULT_CONTENT_LAYER], target),
            "style": args.beta * style_loss({n: features[n] for n in DEFAULT_STYLE_LAYERS}, grams),
            "tv": args.gamma * total_variation(image),
        }
        optimizer.zero_grad()
        sum(terms.values()).backward()
        optimizer.step()
        if step % 50 == 0 or step == args.steps - 1:
            print(step, "  ".join(f"{k} {v.item():.3g}" for k, v in terms.items()),
                  f"(unweighted TV {total_variation(image).item():.3f})", flush=True)
    save_image(args.out, image.detach().clamp(0.0, 1.0)[0])
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
