"""Training-step benchmark: reconet's step versus a naive loop written like earlier ReCoNet code.

Both variants train the same network with the same loss functions, weights, loss network and
batch; only the structure of the step differs:

* reconet (:class:`reconet.training.module.ReCoNetModule`): one stylization forward pass on
  both frames, ONE loss-network pass on cat([input N, input N+1, output N, output N+1]), style
  Gram matrices computed once when the objective is built;
* naive: each frame stylized separately, the loss network run separately for every image and
  every loss (content: output and input of each frame; style: output of each frame and the
  style image, whose Grams are recomputed every step), so the outputs' feature graphs are
  built and back-propagated twice.

Each variant runs in its own child process so that its peak memory is its own. Prints
seconds per step, the speed-up and peak memory (CPU: peak RSS; CUDA: peak allocated).

    python scripts/benchmark_training.py                 # 640x360, batch 2 pairs, paper model
    python scripts/benchmark_training.py --steps 3 --warmup 1 --size 360 640
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import resource
import sys
import time
import warnings

import torch


def _build(args: argparse.Namespace, device: torch.device):
    from reconet.image import load_image
    from reconet.losses import ReCoNetLoss
    from reconet.models import build_reconet
    from reconet.models.loss_network import build_loss_network
    from reconet.training.config import asset_path

    content_layer, style_layers = "relu3_3", ("relu1_2", "relu2_2", "relu3_3", "relu4_3")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the offline VGG-19 fallback warning; reported below
        vgg = build_loss_network(args.loss_network, layers=(content_layer, *style_layers), weights=args.weights)
    vgg = vgg.to(device)
    style = load_image(asset_path("styles/candy.jpg"))
    objective = ReCoNetLoss(vgg, style, content_layer=content_layer, style_layers=style_layers, style_size=args.style_size)
    objective = objective.to(device)
    network = build_reconet(args.model).to(device)
    height, width = args.size
    generator = torch.Generator().manual_seed(0)
    batch = {
        "frame1": torch.rand(args.batch, 3, height, width, generator=generator),
        "frame2": torch.rand(args.batch, 3, height, width, generator=generator),
        "flow": torch.randn(args.batch, 2, height, width, generator=generator) * 3,
        "mask": (torch.rand(args.batch, 1, height, width, generator=generator) > 0.1).float(),
    }
    batch = {key: value.to(device) for key, value in batch.items()}
    return network, objective, vgg, style.to(device), batch


def naive_losses(network, objective, vgg, style_image, batch, style_size: int) -> dict[str, torch.Tensor]:
    """The loss as earlier public ReCoNet code computed it: same terms, one VGG call per use."""
    import torch.nn.functional as F

    from reconet.losses import (
        content_loss,
        feature_temporal_loss,
        gram_matrix,
        output_temporal_loss,
        style_loss,
        total_variation,
    )

    frame1, frame2, flow, mask = batch["frame1"], batch["frame2"], batch["flow"], batch["mask"]
    result1 = network(frame1)  # each frame separately
    result2 = network(frame2)
    weights = objective.weights
    content = style = 0.0
    for frame, result in ((frame1, result1), (frame2, result2)):
        # content loss: its own VGG passes for the output and the input
        target = vgg(frame)[objective.content_layer].detach()
        content = content + content_loss(vgg(result.output)[objective.content_layer], target)
        # style loss: another VGG pass on the output, and the style image's Grams recomputed
        height, width = style_image.shape[-2:]
        scale = style_size / min(height, width)
        size = (round(height * scale), round(width * scale))
        resized = F.interpolate(style_image[None], size=size, mode="bilinear", align_corners=False, antialias=True)
        style_features = vgg(resized.clamp(0.0, 1.0))
        target_grams = {name: gram_matrix(style_features[name]).detach() for name in objective.style_layers}
        output_features = vgg(result.output)
        outputs = {name: output_features[name] for name in objective.style_layers}
        style = style + style_loss(outputs, target_grams, objective.style_layer_weights)
    tv = total_variation(result1.output) + total_variation(result2.output)
    temporal_f = feature_temporal_loss(result1.features, result2.features, flow, mask)
    temporal_o = output_temporal_loss(result1.output, result2.output, frame1, frame2, flow, mask)
    terms = {
        "content": weights["alpha"] * content,
        "style": weights["beta"] * style,
        "tv": weights["gamma"] * tv,
        "temporal_feature": weights["lambda_f"] * temporal_f,
        "temporal_output": weights["lambda_o"] * temporal_o,
    }
    terms["total"] = sum(terms.values())
    return terms


def _worker(variant: str, args: argparse.Namespace, queue: mp.Queue) -> None:
    torch.manual_seed(0)
    device = torch.device(args.device)
    network, objective, vgg, style, batch = _build(args, device)
    optimizer = torch.optim.Adam(network.parameters(), lr=1e-3)
    if variant == "reconet":
        from reconet.training.module import ReCoNetModule

        module = ReCoNetModule(network, objective, lambda params: optimizer).to(device)

        def step() -> dict[str, torch.Tensor]:
            return module.model_step(batch)[0]
    else:

        def step() -> dict[str, torch.Tensor]:
            return naive_losses(network, objective, vgg, style, batch, args.style_size)

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    times, first_total = [], None
    for index in range(args.warmup + args.steps):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        losses = step()
        losses["total"].backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        if index == 0:
            first_total = float(losses["total"].detach())  # same weights, same batch: must agree across variants
        if index >= args.warmup:
            times.append(time.perf_counter() - start)
    if device.type == "cuda":
        peak = torch.cuda.max_memory_allocated(device)
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB
    queue.put({"variant": variant, "times": times, "peak": peak, "first_total": first_total, "loss_network": vgg.name})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, nargs=2, default=(360, 640), metavar=("H", "W"))
    parser.add_argument("--batch", type=int, default=2, help="frame pairs per step")
    parser.add_argument("--model", default="paper")
    parser.add_argument("--loss-network", default="vgg16", help="vgg16 (falls back to the bundled vgg19 offline) or vgg19")
    parser.add_argument("--weights", default="auto", help="loss-network weights: auto | random | <path>")
    parser.add_argument("--style-size", type=int, default=512)
    parser.add_argument("--steps", type=int, default=2, help="timed steps per variant")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args(argv)

    context = mp.get_context("spawn")
    results = {}
    for variant in ("reconet", "naive"):
        queue = context.Queue()
        process = context.Process(target=_worker, args=(variant, args, queue))
        process.start()
        process.join()
        if process.exitcode != 0 or queue.empty():
            print(f"{variant} run failed (exit code {process.exitcode})", file=sys.stderr)
            return 1
        results[variant] = queue.get()

    height, width = args.size
    print(
        f"training step, {width}x{height}, batch {args.batch} pairs, model {args.model}, "
        f"loss network {results['reconet']['loss_network']}, device {args.device}, "
        f"torch threads {torch.get_num_threads()}, {args.steps} timed steps after {args.warmup} warm-up"
    )
    print(f"{'variant':<10} {'s/step':>10} {'peak memory':>14} {'loss (step 1)':>16}")
    for variant, result in results.items():
        mean = sum(result["times"]) / len(result["times"])
        result["mean"] = mean
        print(f"{variant:<10} {mean:>10.2f} {result['peak'] / 2**30:>11.2f} GiB {result['first_total']:>16.6g}")
    print(f"speed-up: {results['naive']['mean'] / results['reconet']['mean']:.2f}x")
    agree = abs(results["naive"]["first_total"] - results["reconet"]["first_total"]) <= 1e-3 * abs(results["reconet"]["first_total"])
    print(f"same loss value: {'yes' if agree else 'NO'}")
    return 0 if agree else 1


if __name__ == "__main__":
    sys.exit(main())
