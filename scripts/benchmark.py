"""Inference speed of ReCoNet on this machine: model-only fps, GFLOP/frame, efficiency, end to end.

    python scripts/benchmark.py --quick          # about 3 minutes on 2 CPU cores: 640x360 only
    python scripts/benchmark.py                  # about 12 minutes: 640x360, 1280x720, 1920x1080
    python scripts/benchmark.py --device cuda    # on a GPU: fp16 / fp32 / bf16 fps per preset and size

Sections (one run, so every ratio compares measurements taken side by side):

1. CPU variants of the paper network at 640x360 (CPU only), each row naming its precision:
   fp32 eager NCHW, eager channels_last, torch.compile, ONNX Runtime, tuned kernels
   (reconet.inference.accelerate), tuned kernels + torch.compile; bf16 channels_last with and
   without torch.compile (reconet.inference.precision; the CPU features detected are printed
   at the top); and "auto", what --precision auto chooses here, with the timings it chose by.
   Efficiency against both the fp32 and the bf16 matrix-multiply rate measured in the same
   section.
2. Model-only fps of every preset at each size on the current device, through the same
   Stylizer that reconet-stylize builds by default for a long video (precision auto: the
   precision column says what it chose, and the lines below it what it measured); GFLOP/frame from conv
   hooks; on CPU, efficiency = fps x GFLOP/frame / SGEMM GFLOP/s (SGEMM measured in this run).
   With --device cuda: the GPU's name, and rows for fp16 (the default), fp32 and bf16.
2b. Runtimes side by side (CPU): one network (default: the fast preset, bundled fast weights when
   present) at one size on real frames, run by reconet (fp32 tuned + compiled, bf16 compiled, int8
   compiled) and by what a user would pick instead: ONNX Runtime fp32 and int8 (static QDQ
   quantization calibrated on the same frames, the RGB layers kept float as reconet does) and
   OpenVINO fp32, bf16 and int8 (the same QDQ model) where installed. Each row: fps, PSNR against
   reconet's fp32 output, and efficiency against the measured fp32, bf16 and int8 matrix rates.
3. End to end on a sample clip (decode -> stylize -> encode, reconet.inference.pipeline) vs the
   same stylizer on the same frames already in memory, alternating, and their ratio.
4. Without a GPU: expected GPU numbers from the FLOP count (not measurements).

Random weights: speed does not depend on what the network learned.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

# Same OpenMP waiting policy as reconet-stylize (set before torch loads OpenMP); run with
# OMP_WAIT_POLICY=ACTIVE to measure the spinning default instead.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402

from reconet.hardware import describe_device  # noqa: E402
from reconet.inference.benchmark import SGEMM_SIZE, Sgemm, gflop_per_frame, interleaved  # noqa: E402
from reconet.inference.stylizer import (  # noqa: E402
    OnnxStylizer,
    TorchStylizer,
    model_to_onnx_bytes,
    resolve_device,
)
from reconet.models import PRESETS, build_reconet  # noqa: E402

SIZES = {"640x360": (640, 360), "1280x720": (1280, 720), "1920x1080": (1920, 1080)}
# Peak dense throughput of a few GPUs, TFLOP/s (vendor figures: fp32; fp16 with tensor cores).
GPUS = {"GTX 1080 Ti": (11.3, None), "RTX 3090": (35.6, 71.0), "A100": (19.5, 312.0)}
# Convolution networks of this size typically reach about half of a GPU's peak (cuDNN); the
# table says so rather than pretending to know.
GPU_EFFICIENCY = 0.5


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="only 640x360 and a shorter clip (about 3 minutes)")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--presets", default=",".join(PRESETS), help="comma-separated presets (default: all)")
    parser.add_argument("--sizes", default=None, help="comma-separated WxH (default: 640x360,1280x720,1920x1080)")
    parser.add_argument("--rounds", type=int, default=None, help="timed rounds per measurement (default 3)")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: PyTorch's, all cores)")
    parser.add_argument("--skip-variants", action="store_true", help="skip section 1")
    parser.add_argument("--skip-runtimes", action="store_true", help="skip section 2b (runtimes side by side)")
    parser.add_argument("--runtimes-preset", default="fast", help="network of section 2b (default: fast)")
    parser.add_argument("--runtimes-size", default="640x360", help="WxH of section 2b (default: 640x360)")
    parser.add_argument(
        "--runtimes-model",
        default=None,
        help="artifact for section 2b (default: the bundled fast network if present, else random weights)",
    )
    parser.add_argument("--variants-preset", default="paper", help="network of section 1 (default: paper)")
    parser.add_argument("--variants-size", default="640x360", help="WxH of section 1 (default: 640x360)")
    parser.add_argument("--no-compile", action="store_true", help="never torch.compile (faster start, slower run)")
    parser.add_argument(
        "--clip",
        type=Path,
        default=None,
        help="video for the end-to-end test (default: the sample data's mdn_cc0_flower.mp4 if present)",
    )
    parser.add_argument("--skip-e2e", action="store_true", help="skip section 3 (end to end)")
    parser.add_argument("--e2e-frames", type=int, default=None, help="frames for the end-to-end test (default 24, quick 12)")
    return parser.parse_args(argv)


def default_clip() -> Path | None:
    root = os.environ.get("RECONET_SAMPLE_DATA")
    data = Path(root) if root else Path(__file__).resolve().parents[1].parent / "shared" / "data"
    clip = data / "videos" / "mdn_cc0_flower.mp4"
    return clip if clip.is_file() else None


def line(text: str = "") -> None:
    print(text, flush=True)


def warm(run, calls: int = 3) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        run()
    return time.perf_counter() - start


def variants_section(
    rounds: int, sgemm: Sgemm, threads: int, allow_compile: bool, preset: str = "paper", size: str = "640x360"
) -> None:
    width, height = SIZES.get(size) or tuple(int(v) for v in size.lower().split("x"))
    model = build_reconet(preset).eval()
    gflop = gflop_per_frame(model, height, width)
    x = torch.rand(1, 3, height, width)
    # Every row names its precision: "auto" would be fp32 on one CPU and bf16 on another.
    runners: dict[str, object] = {
        "fp32 eager NCHW": TorchStylizer(model, device="cpu", precision="fp32", accelerate=False),
        "fp32 eager channels_last": TorchStylizer(
            model, device="cpu", precision="fp32", accelerate=False, channels_last=True
        ),
        "fp32 tuned kernels": TorchStylizer(model, device="cpu", precision="fp32", accelerate=True),
        # bf16 with fp32 islands (reconet.inference.precision); emulated, hence slow, without
        # AMX-BF16 / AVX512-BF16
        "bf16 channels_last": TorchStylizer(model, device="cpu", precision="bf16"),
        # what reconet-stylize's default --precision auto picks here (eager; compile comes on top)
        "auto": TorchStylizer(model, device="cpu", precision="auto"),
    }
    if allow_compile:
        runners["fp32 torch.compile"] = TorchStylizer(
            model, device="cpu", precision="fp32", accelerate=False, compile=True
        )
        runners["fp32 tuned kernels + compile"] = TorchStylizer(
            model, device="cpu", precision="fp32", accelerate=True, compile=True
        )
        runners["bf16 channels_last + compile"] = TorchStylizer(model, device="cpu", precision="bf16", compile=True)
    try:
        import onnxruntime  # noqa: F401

        runners["fp32 ONNX Runtime"] = OnnxStylizer(model_to_onnx_bytes(model), device="cpu", threads=threads)
    except ImportError:
        line("  (ONNX Runtime not installed: pip install 'reconet[onnx]' to compare it)")
    candidates = {name: (lambda r=runner: r(x)) for name, runner in runners.items()}
    line(f"1. CPU variants: {preset} preset at {width}x{height}, batch 1, {gflop:.1f} GFLOP/frame, {threads} threads")
    for name, run in candidates.items():
        seconds = warm(run)
        line(f"   warm-up {name:38s} {seconds:6.1f} s (tuning / compiling / measuring)")
    auto = runners["auto"]
    line(f"   auto chose {auto.info.dtype}: {auto.precision_choice.describe() if auto.precision_choice else 'nothing to choose (bf16 not native here)'}")
    # The bf16 matrix rate: what a bf16 network could reach (several times SGEMM with AMX,
    # below it where bf16 is emulated). Measured before and after the timings, best kept.
    bf16_gemm = Sgemm("cpu", dtype=torch.bfloat16)
    bf16_gemm.measure()
    timings = interleaved(candidates, rounds, sgemm)
    bf16_gemm.measure()
    line(f"   matrix multiply (best in this section): fp32 {sgemm.best:.1f} GFLOP/s, bf16 {bf16_gemm.best:.1f} GFLOP/s")
    line(
        f"   {'variant':38s} {'fps':>7s} {'ms/frame':>9s} {'vs fp32 GEMM':>12s} {'vs bf16 GEMM':>12s}"
        f"   (best of {rounds}; median ms)"
    )
    for name, timing in sorted(timings.items(), key=lambda kv: kv[1].best):
        fps = 1 / timing.best
        line(
            f"   {name:38s} {fps:7.3f} {1000 * timing.best:9.0f} {fps * gflop / sgemm.best:12.0%} "
            f"{fps * gflop / bf16_gemm.best:12.0%}   ({1000 * timing.median:.0f})"
        )
    line()


def _gemm_rates(rounds: int = 3) -> dict[str, float]:
    """Best GOP/s of a 2048^3 matrix product in fp32, bf16 and int8 (``torch._int_mm``)."""
    rates = {}
    for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        gemm = Sgemm("cpu", dtype=dtype)
        for _ in range(rounds):
            gemm.measure()
        rates[name] = gemm.best
    a = torch.randint(-64, 64, (SGEMM_SIZE, SGEMM_SIZE), dtype=torch.int8)
    b = torch.randint(-64, 64, (SGEMM_SIZE, SGEMM_SIZE), dtype=torch.int8)
    best = float("inf")
    for _ in range(rounds + 1):
        start = time.perf_counter()
        torch._int_mm(a, b)
        best = min(best, time.perf_counter() - start)
    rates["int8"] = 2 * SGEMM_SIZE**3 / best / 1e9
    return rates


def _real_frames(width: int, height: int, count: int = 5) -> torch.Tensor:
    """Bundled photos (real content) resized to cover and centre-cropped: (count, 3, H, W)."""
    from reconet.inference.quantize import calibration_frames

    return torch.cat(calibration_frames(torch.empty(0, 3, height, width), photos=count))


def _ort_int8(onnx_path: Path, int8_path: Path, frames: torch.Tensor) -> None:
    """ONNX Runtime's static quantization (QDQ, per-channel int8 weights, uint8 activations) of
    every convolution but the first and the last (the RGB layers, float as in reconet's int8)."""
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    convs = [node.name for node in onnx.load(str(onnx_path)).graph.node if node.op_type == "Conv"]

    class Frames(CalibrationDataReader):
        def __init__(self) -> None:
            self.items = iter([{"input": frame[None].numpy()} for frame in frames])

        def get_next(self):
            return next(self.items, None)

    quantize_static(
        str(onnx_path), str(int8_path), Frames(), quant_format=QuantFormat.QDQ, op_types_to_quantize=["Conv"],
        nodes_to_exclude=[convs[0], convs[-1]], per_channel=True,
        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
    )  # fmt: skip


def runtimes_section(
    preset: str, model_path: str | None, size: str, rounds: int, threads: int, allow_compile: bool
) -> None:
    from reconet.hardware import native_bf16_cpu
    from reconet.inference.precision import psnr
    from reconet.inference.quantize import int8_unavailable
    from reconet.models.artifact import load_stylizer
    from reconet.models.pretrained import bundled_network_path

    width, height = SIZES.get(size) or tuple(int(v) for v in size.lower().split("x"))
    source = "random weights"
    path = (bundled_network_path(model_path) or Path(model_path)) if model_path else bundled_network_path(preset)
    if path is not None and path.is_file():
        model, _ = load_stylizer(path)
        model = model.for_style(0) if model.num_styles > 1 else model
        source = path.name + (" (style 0)" if model.num_styles > 1 else "")
    else:
        model = build_reconet(preset)
    model = model.eval()
    frames = _real_frames(width, height)
    x, calibration = frames[:1], frames[1:]
    gflop = gflop_per_frame(model, height, width)
    line(f"2b. Runtimes side by side: {preset} ({source}) at {width}x{height}, batch 1, {gflop:.2f} GFLOP/frame, "
         f"{threads} threads, real frames (bundled photos)")  # fmt: skip
    runners: dict[str, tuple[str, object]] = {}  # name -> (precision, callable on (1, 3, H, W))
    runners["reconet fp32 (tuned + compile)"] = ("fp32", TorchStylizer(model, device="cpu", precision="fp32", compile=allow_compile))
    runners["reconet bf16 (compile)"] = ("bf16", TorchStylizer(model, device="cpu", precision="bf16", compile=allow_compile))
    if int8_unavailable(torch.device("cpu")) is None:
        runners["reconet int8 (compiled)"] = ("int8", TorchStylizer(model, device="cpu", precision="int8"))
    else:
        line(f"   (reconet int8: {int8_unavailable(torch.device('cpu'))})")
    with tempfile.TemporaryDirectory() as folder:
        onnx_path, int8_path = Path(folder) / "model.onnx", Path(folder) / "model_int8.onnx"
        try:
            import onnxruntime as ort

            onnx_path.write_bytes(model_to_onnx_bytes(model))
            _ort_int8(onnx_path, int8_path, calibration)
            options = ort.SessionOptions()
            options.intra_op_num_threads = threads
            for name, file, precision in (("ONNX Runtime fp32", onnx_path, "fp32"), ("ONNX Runtime int8 (QDQ)", int8_path, "int8")):
                session = ort.InferenceSession(str(file), options, providers=["CPUExecutionProvider"])
                runners[name] = (precision, lambda frame, s=session: torch.from_numpy(s.run(None, {"input": frame.numpy()})[0]))
        except ImportError:
            line("   (ONNX Runtime rows: pip install 'reconet[onnx]')")
        try:
            import openvino as ov

            core = ov.Core()
            variants = [("OpenVINO fp32", onnx_path, "f32", "fp32")]
            if native_bf16_cpu():
                variants.append(("OpenVINO bf16", onnx_path, "bf16", "bf16"))
            variants.append(("OpenVINO int8 (QDQ)", int8_path, "bf16" if native_bf16_cpu() else "f32", "int8"))
            for name, file, hint, precision in variants:
                if not file.is_file():
                    continue
                compiled = core.compile_model(
                    core.read_model(str(file)),
                    "CPU",
                    {"INFERENCE_PRECISION_HINT": hint, "INFERENCE_NUM_THREADS": threads, "PERFORMANCE_HINT": "LATENCY"},
                )
                request = compiled.create_infer_request()
                runners[name] = (precision, lambda frame, r=request: torch.from_numpy(r.infer({0: frame.numpy()})[0].copy()))
        except ImportError:
            line("   (OpenVINO rows: pip install openvino)")
        with torch.no_grad():
            reference = model(x).output
        quality = {}
        for name, (_, run) in runners.items():
            seconds = warm(lambda r=run: r(x), calls=3)  # tuning, quantizing, compiling
            quality[name] = psnr(reference, run(x))
            line(f"   warm-up {name:34s} {seconds:6.1f} s")
        timings = interleaved({name: (lambda r=run: r(x)) for name, (_, run) in runners.items()}, max(rounds, 5))
    rates = _gemm_rates()
    line("   matrix multiply (2048^3, best of 3): " + ", ".join(f"{k} {v:.0f} G{'OP' if k == 'int8' else 'FLOP'}/s" for k, v in rates.items()))
    line(f"   {'runtime':36s} {'fps':>7s} {'ms':>6s} {'PSNR vs fp32':>12s} {'vs fp32 GEMM':>12s} {'vs bf16 GEMM':>12s} {'vs int8 GEMM':>12s}")
    for name, timing in sorted(timings.items(), key=lambda kv: kv[1].best):
        fps = 1 / timing.best
        work = fps * gflop
        shown = "exact" if quality[name] == float("inf") else f"{quality[name]:.1f} dB"
        line(f"   {name:36s} {fps:7.1f} {1000 * timing.best:6.1f} {shown:>12s} "
             f"{work / rates['fp32']:12.0%} {work / rates['bf16']:12.0%} {work / rates['int8']:12.0%}")  # fmt: skip
    line()


def presets_section(
    presets: list[str], sizes: list[str], rounds: int, device: torch.device, sgemm: Sgemm | None, allow_compile: bool
) -> dict[tuple[str, str], TorchStylizer]:
    cuda = device.type == "cuda"
    compile_default = allow_compile and not cuda
    # CUDA: the default fp16 and, for comparison, fp32 (and bf16 where the GPU has it), all
    # with channels_last and cudnn.benchmark. CPU: what reconet-stylize uses by default.
    precisions = ["auto"]
    if cuda:
        precisions = ["fp16", "fp32"] + (["bf16"] if torch.cuda.is_bf16_supported() else [])
    mode = "channels_last, cudnn.benchmark" if cuda else "precision auto; fp32 with tuned kernels" + (
        ", then torch.compile" if compile_default else ""
    )
    line(f"2. Model-only speed on {device} ({mode}), batch 1")
    runners: dict[tuple[str, str], TorchStylizer] = {}
    rows = []
    choices: list[str] = []  # what auto measured, per preset and size
    for preset in presets:
        model = build_reconet(preset).eval()
        for size in sizes:
            width, height = SIZES.get(size) or tuple(int(v) for v in size.lower().split("x"))
            x = torch.rand(1, 3, height, width)
            for precision in precisions:
                runner = TorchStylizer(model, device=device, precision=precision, compile=compile_default)
                warm(lambda: runner(x), calls=2)  # tunes kernels, then compiles
                sync = runner.synchronize
                timing = interleaved({"model": lambda: runner(x)}, rounds, sgemm, sync)["model"]
                rows.append((preset, size, runner.info.dtype, gflop_per_frame(model, height, width), timing.best))
                if runner.precision_choice is not None:
                    choices.append(f"{preset} {size}: {runner.precision_choice.describe()}")
                runners.setdefault((preset, size), runner)  # the first precision: the default
    # printed after all measurements, so every efficiency uses the same SGEMM figure
    header = f"   {'preset':8s} {'size':10s} {'precision':28s} {'GFLOP/frame':>11s} {'fps':>8s} {'ms/frame':>9s}"
    line(header + ("" if cuda else f" {'efficiency':>10s}"))
    for preset, size, dtype, gflop, seconds in rows:
        row = f"   {preset:8s} {size:10s} {dtype:28s} {gflop:11.1f} {1 / seconds:8.2f} {1000 * seconds:9.0f}"
        if not cuda and sgemm is not None:
            row += f" {gflop / seconds / sgemm.best:10.0%}"
        line(row)
    for choice in choices:
        line(f"   auto precision, {choice}")
    if sgemm is not None and not cuda:
        line(f"   SGEMM (best so far in this run): {sgemm.best:.1f} GFLOP/s")
    line()
    return runners


def end_to_end_section(clip: Path, runner: TorchStylizer, size: tuple[int, int], frames: int, preset: str) -> None:
    from reconet.image import uint8_to_tensor
    import reconet.media as media
    from reconet.inference.pipeline import run

    width, height = size
    line(f"3. End to end: {clip.name} -> mp4 at {width}x{height}, {frames} frames, {preset} preset")
    with media.open_frames(clip, size=media.SizeSpec(size_wh=size), max_frames=frames) as source:
        decoded = [uint8_to_tensor(frame.image)[None].contiguous() for frame in source.frames()]

    def model_only() -> float:
        start = time.perf_counter()
        for x in decoded:
            runner(x)
        runner.synchronize()
        return len(decoded) / (time.perf_counter() - start)

    def end_to_end() -> float:
        with tempfile.TemporaryDirectory() as folder:
            with media.open_frames(clip, size=media.SizeSpec(size_wh=size), max_frames=frames) as source:
                start = time.perf_counter()
                with media.open_writer(Path(folder) / "out.mp4", source) as writer:
                    stats = run(source, runner, writer, progress=False)
                wall = time.perf_counter() - start  # includes encoder flush and rename
        return stats.frames / wall

    runner(decoded[0])  # warm
    # alternate, so that both see the same background load
    model_runs, e2e_runs = [model_only()], []
    for _ in range(2):
        e2e_runs.append(end_to_end())
        model_runs.append(model_only())
    model_fps = sum(model_runs) / len(model_runs)
    e2e = sum(e2e_runs) / len(e2e_runs)
    line(f"   model only (frames in memory), 3 runs:       {', '.join(f'{v:.3f}' for v in model_runs)} fps")
    line(f"   end to end (decode + stylize + encode), 2 runs: {', '.join(f'{v:.3f}' for v in e2e_runs)} fps")
    line(f"   ratio end-to-end / model-only (means):         {e2e / model_fps:.3f}")
    line()


def gpu_section(presets: list[str], sizes: list[str]) -> None:
    line(f"4. Expected GPU model-only fps (NOT measured here: no GPU), at {GPU_EFFICIENCY:.0%} of peak")
    names = list(GPUS)
    header = f"   {'preset':8s} {'size':10s} {'GFLOP':>6s} " + " ".join(f"{n + ' fp32':>16s} {n + ' fp16':>16s}" for n in names)
    line(header)
    for preset in presets:
        model = build_reconet(preset)
        for size in sizes:
            width, height = SIZES.get(size) or tuple(int(v) for v in size.lower().split("x"))
            gflop = gflop_per_frame(model, height, width)
            cells = []
            for name in names:
                fp32, fp16 = GPUS[name]
                cells.append(f"{fp32 * 1000 * GPU_EFFICIENCY / gflop:16.0f}")
                cells.append(f"{fp16 * 1000 * GPU_EFFICIENCY / gflop:16.0f}" if fp16 else f"{'-':>16s}")
            line(f"   {preset:8s} {size:10s} {gflop:6.1f} " + " ".join(cells))
    line()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    warnings.filterwarnings("ignore")
    import logging

    logging.getLogger("torch").setLevel(logging.ERROR)
    device = resolve_device(args.device)
    sizes = args.sizes.split(",") if args.sizes else (["640x360"] if args.quick else list(SIZES))
    presets = args.presets.split(",")
    rounds = args.rounds or 3
    if args.threads:
        torch.set_num_threads(args.threads)  # before NNPACK sizes its thread pool on first use
    threads = torch.get_num_threads()
    started = time.perf_counter()
    line(
        f"reconet inference benchmark: torch {torch.__version__}, {describe_device(device)}, {os.cpu_count()} CPUs, "
        f"{threads} threads, OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')}"
    )
    line(f"command: python scripts/benchmark.py {' '.join(argv if argv is not None else sys.argv[1:])}".rstrip())
    line()
    sgemm = Sgemm(device)
    sgemm.measure()
    if device.type == "cpu" and not args.skip_variants:
        variants_section(rounds, sgemm, threads, not args.no_compile, args.variants_preset, args.variants_size)
    if device.type == "cpu" and not args.skip_runtimes:
        runtimes_section(args.runtimes_preset, args.runtimes_model, args.runtimes_size, rounds, threads, not args.no_compile)
    runners = presets_section(presets, sizes, rounds, device, sgemm, not args.no_compile)
    clip = args.clip or default_clip()
    e2e_key = next((key for key in runners if key[0] == "paper"), next(iter(runners), None))
    if args.skip_e2e:
        line("3. End to end: skipped (--skip-e2e)\n")
    elif clip is None:
        line("3. End to end: skipped (no sample clip; pass --clip VIDEO)\n")
    elif e2e_key is not None:
        size = SIZES.get(e2e_key[1]) or tuple(int(v) for v in e2e_key[1].split("x"))
        end_to_end_section(clip, runners[e2e_key], size, args.e2e_frames or (12 if args.quick else 24), e2e_key[0])
    if device.type != "cuda":
        gpu_section(presets, sizes)
    line(f"SGEMM best over the whole run: {sgemm.best:.1f} GFLOP/s; total time {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
