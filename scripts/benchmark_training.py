"""Training-step benchmark: reconet's step versus a naive loop written like earlier ReCoNet code.

All variants train the same network with the same loss functions, weights, loss network and
batch; only the structure of the step differs:

* reconet (:class:`reconet.training.module.ReCoNetModule`): one stylization forward pass on
  both frames; each image through the loss network once: cat([input N, input N+1]) without
  autograd and only up to the content layer, cat([output N, output N+1]) with autograd; style
  Gram matrices computed once when the objective is built;
* one-batch: as reconet, but one loss-network pass on cat([inputs, outputs]) with autograd
  (the design that stacks everything into one batch; the backward pass then also runs through
  the input rows);
* naive: each frame stylized separately, the loss network run separately for every image and
  every loss (content: output and input of each frame; style: output of each frame and the
  style image, whose Grams are recomputed every step), so the outputs' feature graphs are
  built and back-propagated twice.

Precision: the reconet step also runs under mixed precision (``--mixed``, default bf16), as
``trainer.precision=bf16-mixed`` runs it: the networks under ``torch.autocast`` in bf16 (fp16
with a gradient scaler on CUDA for ``fp16``), the losses in fp32, the weights and Adam in fp32.
Its speed-up over the fp32 step is reported with the step-1 loss next to fp32's; bf16 pays on
CPUs with native bf16 matrix units (AMX-BF16 / AVX512-BF16, listed in the header) and GPUs, and
is emulated, slower than fp32, elsewhere.

Work and memory: one step of each variant runs in its own child process under
``torch.utils.flop_counter.FlopCounterMode`` (forward and backward FLOPs; exact, not timed) and
reports its own peak memory (CPU: peak RSS; CUDA: peak allocated) and loss value (all three
must agree). Time: all variants then run in one process, one step each per round, in an order
rotated every round, so load changes on a shared machine hit them alike; the speed-up is the
median of the per-round ratios.

    python scripts/benchmark_training.py                 # 640x360, batch 2 pairs, paper model
    python scripts/benchmark_training.py --rounds 5 --device cuda --mixed bf16 fp16
"""

from __future__ import annotations

import argparse
import copy
import multiprocessing as mp
import resource
import statistics
import sys
import time
import warnings

import torch

from reconet.hardware import describe_device

# A bf16-mixed step's loss may differ from fp32 by this fraction (bf16 loss-network features:
# measured 0.2 %, tests/losses/test_reconet_objective.py).
MIXED_TOLERANCE = 0.02


def _build(args: argparse.Namespace, device: torch.device):
    from reconet.image import load_image
    from reconet.losses import ReCoNetLoss
    from reconet.models import build_reconet
    from reconet.models.loss_network import build_loss_network
    from reconet.resources import asset_path

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


def one_batch_losses(network, objective, batch) -> dict[str, torch.Tensor]:
    """reconet's step with a single loss-network pass on cat([input N, input N+1, output N, output N+1])."""
    from reconet.losses import (
        content_loss,
        feature_temporal_loss,
        output_temporal_loss,
        style_loss,
        total_variation,
        weighted_terms,
    )

    frame1, frame2, flow, mask = batch["frame1"], batch["frame2"], batch["flow"], batch["mask"]
    size = frame1.shape[0]
    both = network(torch.cat([frame1, frame2]))
    output1, output2 = both.output[:size], both.output[size:]
    features = objective.loss_network(torch.cat([frame1, frame2, output1, output2]))  # (4B, C, h, w)
    content = style = 0.0
    for frame in (0, 1):
        rows = slice((2 + frame) * size, (3 + frame) * size)
        target = features[objective.content_layer][frame * size : (frame + 1) * size].detach()
        content = content + content_loss(features[objective.content_layer][rows], target)
        outputs = {name: features[name][rows] for name in objective.style_layers}
        style = style + style_loss(outputs, objective.style_grams, objective.style_layer_weights)
    raw = {
        "content": content,
        "style": style,
        "tv": total_variation(output1) + total_variation(output2),
        "temporal_feature": feature_temporal_loss(both.features[:size], both.features[size:], flow, mask),
        "temporal_output": output_temporal_loss(output1, output2, frame1, frame2, flow, mask),
    }
    return weighted_terms(raw, objective.weights)


def naive_losses(network, objective, vgg, style_image, batch, style_size: int) -> dict[str, torch.Tensor]:
    """The loss as earlier public ReCoNet code computed it: same terms, one VGG call per use."""
    from reconet.losses import (
        content_loss,
        feature_temporal_loss,
        gram_matrix,
        output_temporal_loss,
        style_loss,
        total_variation,
        weighted_terms,
    )
    from reconet.losses.objective import resize_style_image

    frame1, frame2, flow, mask = batch["frame1"], batch["frame2"], batch["flow"], batch["mask"]
    result1 = network(frame1)  # each frame separately
    result2 = network(frame2)
    content = style = 0.0
    for frame, result in ((frame1, result1), (frame2, result2)):
        # content loss: its own VGG passes for the output and the input
        target = vgg(frame)[objective.content_layer].detach()
        content = content + content_loss(vgg(result.output)[objective.content_layer], target)
        # style loss: another VGG pass on the output, and the style image's Grams recomputed
        style_features = vgg(resize_style_image(style_image[None], style_size))
        target_grams = {name: gram_matrix(style_features[name]).detach() for name in objective.style_layers}
        output_features = vgg(result.output)
        outputs = {name: output_features[name] for name in objective.style_layers}
        style = style + style_loss(outputs, target_grams, objective.style_layer_weights)
    raw = {
        "content": content,
        "style": style,
        "tv": total_variation(result1.output) + total_variation(result2.output),
        "temporal_feature": feature_temporal_loss(result1.features, result2.features, flow, mask),
        "temporal_output": output_temporal_loss(result1.output, result2.output, frame1, frame2, flow, mask),
    }
    return weighted_terms(raw, objective.weights)


VARIANTS = ("reconet", "one-batch", "naive")
MIXED = {"bf16": torch.bfloat16, "fp16": torch.float16}


def _rows(mixed: list[str]) -> tuple[str, ...]:
    """Row names: the fp32 variants and ``reconet-<precision>`` for every mixed precision."""
    return ("reconet", *(f"reconet-{name}" for name in mixed), *VARIANTS[1:])


def _precision(row: str) -> str | None:
    return row.split("-", 1)[1] if row.startswith("reconet-") else None


def _make_step(variant: str, network, objective, vgg, style, batch, style_size: int):
    """A function computing the loss terms of one step of ``variant`` (the backward pass is the caller's)."""
    precision = _precision(variant)
    if precision is not None:
        plain = _make_step("reconet", network, objective, vgg, style, batch, style_size)
        device_type = batch["frame1"].device.type

        def mixed_step():
            with torch.autocast(device_type, dtype=MIXED[precision]):
                return plain()

        return mixed_step
    if variant == "reconet":
        from reconet.training.module import ReCoNetModule

        module = ReCoNetModule(network, objective, lambda params: None)
        return lambda: module.model_step(batch)[0]
    if variant == "one-batch":
        return lambda: one_batch_losses(network, objective, batch)
    return lambda: naive_losses(network, objective, vgg, style, batch, style_size)


def _train_step(step, optimizer: torch.optim.Optimizer, device: torch.device, scaler=None) -> tuple[float, float]:
    """One optimizer step -> (seconds, total loss); ``scaler`` a GradScaler for fp16."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    losses = step()
    if scaler is None:
        losses["total"].backward()
        optimizer.step()
    else:
        scaler.scale(losses["total"]).backward()
        scaler.step(optimizer)
        scaler.update()
    optimizer.zero_grad(set_to_none=True)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - start, float(losses["total"].detach())


def _work_and_memory(variant: str, args: argparse.Namespace, queue: mp.Queue) -> None:
    """Child process: one step of ``variant`` under a FLOP counter; its own peak memory."""
    from torch.utils.flop_counter import FlopCounterMode

    torch.manual_seed(0)
    device = torch.device(args.device)
    network, objective, vgg, style, batch = _build(args, device)
    optimizer = torch.optim.Adam(network.parameters(), lr=1e-3)
    step = _make_step(variant, network, objective, vgg, style, batch, args.style_size)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    with FlopCounterMode(display=False) as counter:  # counts forward and backward operators
        _, total = _train_step(step, optimizer, device, _scaler(variant, device))
    if device.type == "cuda":
        peak = torch.cuda.max_memory_allocated(device)
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB
    queue.put({"flop": counter.get_total_flops(), "peak": peak, "first_total": total, "loss_network": vgg.name})


def _scaler(variant: str, device: torch.device):
    return torch.amp.GradScaler(device.type) if _precision(variant) == "fp16" else None


def _interleaved_times(args: argparse.Namespace) -> dict[str, list[float]]:
    """Seconds per step of every variant, measured round by round in one process.

    Each round runs one step of every variant, in an order rotated every round, so that load
    changing on a shared machine affects all variants alike; ratios are taken within a round.
    """
    torch.manual_seed(0)
    device = torch.device(args.device)
    network, objective, vgg, style, batch = _build(args, device)
    rows = _rows(args.mixed)
    steps, optimizers, scalers = {}, {}, {}
    for variant in rows:
        copy_ = copy.deepcopy(network)
        optimizers[variant] = torch.optim.Adam(copy_.parameters(), lr=1e-3)
        steps[variant] = _make_step(variant, copy_, objective, vgg, style, batch, args.style_size)
        scalers[variant] = _scaler(variant, device)
    for _ in range(args.warmup):
        for variant in rows:
            _train_step(steps[variant], optimizers[variant], device, scalers[variant])
    times: dict[str, list[float]] = {variant: [] for variant in rows}
    for round_ in range(args.rounds):
        order = rows[round_ % len(rows) :] + rows[: round_ % len(rows)]
        for variant in order:
            seconds, _ = _train_step(steps[variant], optimizers[variant], device, scalers[variant])
            times[variant].append(seconds)
    return times


def _auto_choice(args: argparse.Namespace) -> str:
    """What ``trainer.precision=auto`` picks on this machine for this step, measured afresh
    (not from the cache) as training measures it, with the timings it picked by."""
    from reconet.training.module import ReCoNetModule
    from reconet.training.precision import auto_training_candidates, choose_training_precision

    candidates = auto_training_candidates(args.device)
    if len(candidates) == 1:
        return f"{candidates[0]} (nothing to measure on this device)"
    torch.manual_seed(0)
    network, objective, _, _, batch = _build(args, torch.device(args.device))
    module = ReCoNetModule(network, objective, lambda params: None)
    step = lambda b: module.model_step(b)[0]["total"]  # noqa: E731
    return choose_training_precision(candidates, step, network, batch, "benchmark", None).describe()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, nargs=2, default=(360, 640), metavar=("H", "W"))
    parser.add_argument("--batch", type=int, default=2, help="frame pairs per step")
    parser.add_argument("--model", default="paper")
    parser.add_argument(
        "--loss-network", default="vgg19", help="vgg19 (bundled, nothing to download) or vgg16 (torchvision's weights)"
    )
    parser.add_argument("--weights", default="auto", help="loss-network weights: auto | random | <path>")
    parser.add_argument("--style-size", type=int, default=512)
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds (one step of every variant each)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps per variant first")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument(
        "--mixed", nargs="*", default=["bf16"], choices=sorted(MIXED), help="mixed precisions of the reconet step (none: fp32 only)"
    )
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.warmup < 0:
        parser.error("--rounds must be >= 1 and --warmup >= 0")
    if "fp16" in args.mixed and args.device == "cpu":
        parser.error("--mixed fp16 is for CUDA; on the CPU use bf16")
    rows = _rows(list(dict.fromkeys(args.mixed)))

    context = mp.get_context("spawn")
    results = {}
    for variant in rows:
        queue = context.Queue()
        process = context.Process(target=_work_and_memory, args=(variant, args, queue))
        process.start()
        process.join()
        if process.exitcode != 0 or queue.empty():
            print(f"{variant} run failed (exit code {process.exitcode})", file=sys.stderr)
            return 1
        results[variant] = queue.get()
    times = _interleaved_times(args)
    auto = _auto_choice(args)

    height, width = args.size
    print(
        f"training step, {width}x{height}, batch {args.batch} pairs, model {args.model}, "
        f"loss network {results['reconet']['loss_network']}, device {describe_device(args.device)}, "
        f"torch threads {torch.get_num_threads()}, "
        f"{args.rounds} interleaved rounds after {args.warmup} warm-up step(s) per variant"
    )
    print(f"{'variant':<13} {'precision':<10} {'s/step':>8} {'GFLOP/step':>11} {'peak memory':>12} {'loss (step 1)':>14}  all times (s)")
    for variant in rows:
        result = results[variant]
        all_times = " ".join(f"{t:.2f}" for t in times[variant])
        precision = f"{_precision(variant)}-mixed" if _precision(variant) else "fp32"
        print(
            f"{variant:<13} {precision:<10} {statistics.median(times[variant]):>8.2f} {result['flop'] / 1e9:>11.0f} "
            f"{result['peak'] / 2**30:>8.2f} GiB {result['first_total']:>14.6g}  {all_times}"
        )
    reference = results["reconet"]["first_total"]
    for variant in rows:
        if _precision(variant) is None:
            continue
        per_round = [t_fp32 / t_mixed for t_fp32, t_mixed in zip(times["reconet"], times[variant])]
        difference = abs(results[variant]["first_total"] - reference) / abs(reference)
        print(
            f"{_precision(variant)}-mixed speed-up over fp32: {statistics.median(per_round):.2f}x in time "
            f"(median of per-round ratios {' '.join(f'{r:.2f}' for r in per_round)}); "
            f"step-1 loss {difference:.2%} from fp32"
        )
    for other in VARIANTS[1:]:
        per_round = [t_other / t_own for t_other, t_own in zip(times[other], times["reconet"])]
        work = results[other]["flop"] / results["reconet"]["flop"]
        print(
            f"reconet speed-up over {other}: {statistics.median(per_round):.2f}x in time "
            f"(median of per-round ratios {' '.join(f'{r:.2f}' for r in per_round)}), {work:.2f}x in work"
        )
    print(f"trainer.precision=auto here: {auto}")
    # The fp32 variants compute the same loss to rounding; a mixed step within MIXED_TOLERANCE.
    agree = all(
        abs(result["first_total"] - reference) <= (MIXED_TOLERANCE if _precision(variant) else 1e-3) * abs(reference)
        for variant, result in results.items()
    )
    print(f"same loss value: {'yes' if agree else 'NO'} (fp32 variants within 0.1 %, mixed within {MIXED_TOLERANCE:.0%})")
    return 0 if agree else 1


if __name__ == "__main__":
    sys.exit(main())
