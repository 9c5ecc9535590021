"""Side-by-side frames: each input image (rows) next to its stylization by each model (columns).

    python scripts/compare_frames.py grid.jpg --image frame.png --image other.jpg \
        --model temporal=runs/a/stylizer.pt --model no_temporal=runs/b/stylizer.pt --height 240

Each row starts with the input, resized to ``--height`` (aspect kept); the models run on that
resized input, so every tile is what the model makes at that size. The content-structure score
of each tile against its input is printed (``reconet.evaluation.structure``), so the picture
and the number can be read together. Writes one JPEG or PNG (by the suffix).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

from reconet.evaluation.structure import content_structure
from reconet.image import load_image, save_image
from reconet.models.artifact import load_stylizer
from reconet.models.pretrained import resolve_model


def _resize(image: torch.Tensor, height: int) -> torch.Tensor:
    """(3, H, W) -> (3, height, W') with the aspect kept (W' even)."""
    width = max(2, round(image.shape[-1] * height / image.shape[-2] / 2) * 2)
    resized = F.interpolate(image[None], size=(height, width), mode="bilinear", antialias=True, align_corners=False)
    return resized[0].clamp(0, 1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("output", type=Path, help="grid image to write (.jpg or .png)")
    parser.add_argument("--image", type=Path, action="append", required=True, help="input image (repeatable)")
    parser.add_argument("--model", action="append", required=True, help="NAME=MODEL: a stylizer.pt, a checkpoint or a bundled style name")
    parser.add_argument("--height", type=int, default=240, help="tile height in pixels")
    args = parser.parse_args(argv)

    models = []
    for spec in args.model:
        name, _, path = spec.partition("=")
        if not path:
            name, path = Path(spec).stem, spec
        network, _ = load_stylizer(resolve_model(path))
        models.append((name, network.eval()))

    rows = []
    for image_path in args.image:
        content = _resize(load_image(image_path), args.height)  # (3, h, w)
        tiles = [content]
        scores = []
        for name, network in models:
            with torch.inference_mode():
                output = network(content[None]).output.clamp(0, 1)  # (1, 3, h, w)
            tiles.append(output[0])
            scores.append(f"{name} {float(content_structure(output, content[None])[0]):.2f}")
        print(f"{image_path.name}: content structure " + ", ".join(scores))
        rows.append(torch.cat(tiles, dim=2))
    width = max(row.shape[-1] for row in rows)
    rows = [F.pad(row, (0, width - row.shape[-1])) for row in rows]
    args.output.parent.mkdir(parents=True, exist_ok=True)
    save_image(args.output, torch.cat(rows, dim=1))
    print(f"wrote {args.output} (columns: input, {', '.join(name for name, _ in models)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
