#!/usr/bin/env bash
# Create .venv with qrprobe and all its extras (offline apart from the package registries).
# Usage: bash scripts/install.sh [dev]      (dev: also pytest, hypothesis, ruff, mypy and its stubs)
set -euo pipefail
cd "$(dirname "$0")/.."
extras="all"
if [ "${1:-}" = "dev" ]; then extras="all,dev"; fi
python3 -m venv .venv
.venv/bin/pip install -q -e ".[$extras]"
# mediapipe (faces, person) and rapidocr-onnxruntime (text) declare OpenCV builds that would overwrite the
# headless one (and OpenCV 5 ships no Haar cascades), so they are installed without their dependencies; what
# they need at run time is in the `experts` extra. Both have wheels for Python < 3.13 only.
if .venv/bin/python -c 'import sys; sys.exit(sys.version_info >= (3, 13))'; then
  .venv/bin/pip install -q --no-deps "mediapipe==0.10.14" "rapidocr-onnxruntime>=1.3,<2"
else
  echo "note: Python >= 3.13: the faces, person and text experts are not available" >&2
fi
