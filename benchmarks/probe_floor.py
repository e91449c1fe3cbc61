"""The compiled probe's training step taken apart: what each part costs alone on this machine, beside the whole.

Issue 20 asks for ≤ 2 s per epoch at 1.28M × 2,500 concepts (30 active) → 1,000 clusters on a 2-core CPU. This
script measures, side by side in one run (same data, same batches, same threads, the same arrays in memory),
the kernel's step and each of its parts run alone through the kernel's own step loop (``probe_floor.c`` includes
``probe_sgd.c``):

    forward gathers   each batch row's sum of its concepts' rows of a tile of W (no softmax), run once per tile
                      and twice per tile: the difference is what the gathers cost over a tile already in the
                      cache (the fused kernel's update pass leaves it there), once alone they fetch it too
    backward gathers  each table row's sum of the gradient rows of the batch rows holding it (no update), the
                      same two ways
    update            the momentum step of every table row with a zero gradient: W and U read and written,
                      the step's traffic with the L3
    softmax           the maximum, exponentials and sum of every row of a tile (no gathers)
    gathers from L1   both gathers with every index taken modulo 64: the rows gathered fit the L1 cache, so
                      this is the core's rate of vector loads and additions without the L2 or the L3
    forward (F)       the kernel's forward pass of a tile alone (gathers and softmax, the tile not cached)
    backward (B)      the kernel's backward pass of a tile alone (scaling, gathers and update)

and prints each as ms per step and as seconds per epoch (× the steps of an epoch, + the kernel's validation
pass), the parts summed (update + the two gathers over a cached tile + softmax), and the kernel over that sum
round by round (each round runs everything once, the order rotated). The parts summed is what the step would
cost if each part cost what it costs alone with its data where the fused step finds it, and the parts did not
overlap; a step beats it only by overlapping them (e.g. the update's L3 traffic under the gathers).

Usage::

    python benchmarks/probe_floor.py --rounds 10 --steps 100 --keep-data probe-data
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_kmeans import _machine  # sibling scripts, not a package
from bench_probe import add_shape_arguments, kernel_split, quartiles

FLOOR_SOURCE = Path(__file__).with_name("probe_floor.c")
# probe_floor.c's parts, in its order
PARTS = ("forward gathers", "forward gathers twice", "backward gathers", "backward gathers twice", "update",
         "softmax", "gathers from L1", "forward (F)", "backward (B)")
CACHED = {"forward gathers, tile cached": ("forward gathers twice", "forward gathers"),
          "backward gathers, tile cached": ("backward gathers twice", "backward gathers")}  # twice − once
SUMMED = ("update", *CACHED, "softmax")


def _floor_library():
    """The build of probe_floor.c (the kernel's source included), its C signatures declared."""
    import ctypes

    from qrprobe._native import load_library
    from qrprobe.engine.probe import kernel

    lib, why = load_library("probe_floor", (FLOOR_SOURCE,), kernel.SOURCES, abi_symbol="qr_probe_abi_version",
                            abi_version=kernel.ABI, flags=kernel.FLAGS)
    if lib is None:
        raise SystemExit(f"probe_floor.c could not be built: {why}")
    p, i, f = ctypes.c_void_p, ctypes.c_int64, ctypes.c_float
    lib.qr_floor_epoch.restype = ctypes.c_int
    lib.qr_floor_epoch.argtypes = [ctypes.c_int, p, p, i, i, p, p, p, p, i, i, f, f, f, p, ctypes.c_int]
    if lib.qr_floor_parts() != len(PARTS):
        raise SystemExit(f"probe_floor.c has {lib.qr_floor_parts()} parts, this script names {len(PARTS)}")
    return lib


def run_part(lib, part: str, sgd, perm: np.ndarray, lr: float, proba: np.ndarray) -> int:
    """Part ``part`` (a name in PARTS) of an epoch over ``perm`` on ``sgd``'s arrays (a ``KernelSGD``: its weights,
    rows, batch size, momentum, decay and threads): ``qr_floor_epoch``'s return code (0 done, −1 out of memory)."""
    r = sgd.rows
    return lib.qr_floor_epoch(PARTS.index(part), sgd.w.ctypes.data, sgd.u.ctypes.data, sgd.n_table, sgd.k,
                              r.indptr.ctypes.data, r.indices.ctypes.data, r.labels.ctypes.data, perm.ctypes.data,
                              len(perm), sgd.batch_size, lr, sgd.momentum, sgd.weight_decay, proba.ctypes.data,
                              sgd.threads)


def _caches() -> str:
    """The data caches of CPU 0 (Linux sysfs), e.g. "L1d 32K, L2 1024K, L3 32768K"; "" where unknown."""
    found = []
    for index in sorted(Path("/sys/devices/system/cpu/cpu0/cache").glob("index*")):
        try:
            kind, level, size = ((index / name).read_text().strip() for name in ("type", "level", "size"))
        except OSError:
            continue
        if kind != "Instruction":
            found.append(f"L{level}{'d' if kind == 'Data' else ''} {size}")
    return ", ".join(found)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_shape_arguments(parser)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=100, help="SGD steps per contender per round")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--goal", type=float, default=2.0, help="the goal in s/epoch (issue 20: 2)")
    args = parser.parse_args()
    if args.rounds < 1 or args.steps < 1 or args.threads < 1:
        parser.error("--rounds, --steps and --threads must be at least 1")

    import time

    from qrprobe.engine.probe import kernel

    if not kernel.available():
        raise SystemExit(f"the compiled probe cannot run here: {kernel.unavailable()}")
    floor = _floor_library()
    x, y, xv, yv = kernel_split(args)
    batch = 512
    steps_per_epoch = -(-x.shape[0] // batch)
    steps = min(args.steps, steps_per_epoch)
    sgd = kernel.KernelSGD(x, y, args.k, batch, 0.9, 3e-6, args.threads)
    val = kernel.KernelRows(xv, yv)
    names = ("kernel", *PARTS)
    ms = {name: [] for name in names}  # ms per step, per round
    valid: list[float] = []  # the kernel's validation pass, s, per round
    rng = np.random.default_rng(0)
    for round_ in range(args.rounds):
        perm = rng.permutation(x.shape[0])[:steps * batch].astype(np.int64)
        proba = np.empty(len(perm), dtype=np.float32)
        order = list(names[round_ % len(names):] + names[:round_ % len(names)])
        for name in order:
            if name == "kernel":
                t = time.perf_counter()
                sgd.epoch(perm, 3.5, proba)
                ms[name].append((time.perf_counter() - t) / steps * 1e3)
                t = time.perf_counter()
                sgd.mean_loss(val)
                valid.append(time.perf_counter() - t)
                continue
            w, u = sgd.w.copy(), sgd.u.copy()  # the parts run on the kernel's arrays, its state put back after
            t = time.perf_counter()
            rc = run_part(floor, name, sgd, perm, 3.5, proba)
            ms[name].append((time.perf_counter() - t) / steps * 1e3)
            np.copyto(sgd.w, w)
            np.copyto(sgd.u, u)
            if rc != 0:
                raise SystemExit(f"part {name!r} failed ({rc}): out of memory")

    for name, (twice, once) in CACHED.items():
        ms[name] = [a - b for a, b in zip(ms[twice], ms[once], strict=True)]
    summed = [sum(ms[name][r] for name in SUMMED) for r in range(args.rounds)]
    validation = statistics.median(valid)

    def epoch(step_ms: float) -> float:
        return step_ms * steps_per_epoch / 1e3 + validation

    print(f"machine: {_machine()}; caches of CPU 0: {_caches() or 'unknown'}")
    print(f"data: N={args.n} M={args.concepts} ones/row={args.ones} K={args.k}; {len(y)} training rows "
          f"({steps_per_epoch} steps of {batch}), {len(yv)} validation rows; {args.threads} thread(s); "
          f"{args.rounds} rounds of {steps} steps each")
    print(f"the kernel's validation pass: {validation:.3f} s (median); each s/epoch below adds it")
    print()
    print("| run alone | ms/step (median, quartiles) | s/epoch with the validation | share of the parts summed |")
    print("|---|---|---|---|")
    total = statistics.median(summed)
    for name in (*names, *CACHED):
        step = statistics.median(ms[name])
        share = f"{step / total:.0%}" if name in SUMMED else "–"
        print(f"| {name} | {quartiles(ms[name], 2)} | {epoch(step):.2f} | {share} |")
    print(f"| parts summed ({' + '.join(SUMMED)}) | {quartiles(summed, 2)} | {epoch(total):.2f} | 100% |")
    print()
    kernel_over_sum = [k / s for k, s in zip(ms["kernel"], summed, strict=True)]
    print(f"kernel / parts summed, round by round: {quartiles(kernel_over_sum, 2)}")
    halves = (("forward (F)", ("forward gathers", "softmax")), ("backward (B)", ("backward gathers", "update")))
    for whole, parts in halves:
        ratio = [ms[whole][r] / sum(ms[p][r] for p in parts) for r in range(args.rounds)]
        print(f"{whole} / ({' + '.join(parts)}), round by round (below 1: its parts overlap): {quartiles(ratio, 2)}")
    cached = statistics.median([sum(ms[name][r] for name in CACHED) for r in range(args.rounds)])
    print(f"goal {args.goal:.2f} s/epoch: the kernel {epoch(statistics.median(ms['kernel'])):.2f}; "
          f"its parts summed {epoch(total):.2f}; its two gathers over cached tiles alone {epoch(cached):.2f}; "
          f"the same gathers from the L1 {epoch(statistics.median(ms['gathers from L1'])):.2f}")


if __name__ == "__main__":
    main()
