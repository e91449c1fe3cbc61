#!/usr/bin/env bash
# The engine's GPU checks and timings, as one script for a machine with a CUDA GPU (run from the repo root).
# Writes logs to $OUT (default: ./gpu-checks). Needs torch with CUDA, scikit-learn, scipy, pandas, pyarrow,
# tqdm, pytest and hypothesis; faiss-cpu for the K-means reference (wheels in .whl/ are installed if present).
set -uo pipefail
OUT=${OUT:-gpu-checks}
mkdir -p "$OUT"
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
if ls .whl/*.whl >/dev/null 2>&1; then
  SITE=${SITE:-$(mktemp -d)}  # where the carried wheels are installed
  python3 -m pip install -q --no-index --no-deps --no-compile --target "$SITE" .whl/*.whl && export PYTHONPATH="$SITE:$PYTHONPATH"
fi
# The Table-2 row first (issue 20 item 5): the paper's ImageNet shape, full protocol, with the K-means references
# installed here. N, DIM, K, CONCEPTS, ONES, EPOCHS, BOOTSTRAP and DEVICE override the shape (the CPU test runs a
# tiny one); ROW_ONLY=1 stops after the row.
python3 benchmarks/table2_row.py --n "${N:-1280000}" --dim "${DIM:-2048}" --k "${K:-1000}" \
  --concepts "${CONCEPTS:-2500}" --ones "${ONES:-30}" --epochs "${EPOCHS:-100}" --bootstrap "${BOOTSTRAP:-200}" \
  --device "${DEVICE:-cuda}" --json "$OUT/table2-row.json" 2>&1 | tee "$OUT/table2-row.txt"
row_status=${PIPESTATUS[0]}
if [ "${ROW_ONLY:-0}" = 1 ]; then exit "$row_status"; fi
{ nvidia-smi -L; nproc; python3 -c 'import torch; print("torch", torch.__version__, torch.cuda.get_device_name(0))'; } | tee "$OUT/machine.txt"
python3 -m pytest -q -p no:cacheprovider tests/test_gpu_engine.py tests/test_probe.py tests/test_quantize.py tests/test_method.py 2>&1 | tail -5 | tee "$OUT/tests.txt"
# the paper's full protocol at the ImageNet shape, on the GPU (ours only)
python3 benchmarks/bench_evaluate.py --n 100000 --dim 2048 --k 1000 --concepts 2500 --ones 30 \
  --iters 100 --restarts 5 --epochs 100 --device cuda --skip-reference 2>&1 | tee "$OUT/bench-gpu-full.txt"
# side by side, reduced schedule: ours on the GPU vs faiss-cpu K-means and a dense torch probe on the GPU
python3 benchmarks/bench_evaluate.py --n 100000 --dim 2048 --k 1000 --concepts 2500 --ones 30 \
  --iters 10 --restarts 1 --epochs 10 --device cuda 2>&1 | tee "$OUT/bench-gpu-ref.txt"
# side by side on the CPU cores of the same machine
python3 benchmarks/bench_evaluate.py --n 100000 --dim 2048 --k 1000 --concepts 2500 --ones 30 \
  --iters 10 --restarts 1 --epochs 3 --device cpu 2>&1 | tee "$OUT/bench-cpu16-ref.txt"
