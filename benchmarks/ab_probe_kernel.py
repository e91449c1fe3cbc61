"""Edits of the compiled probe kernel measured side by side in one process, round by round, on the same batches.

On a shared virtual machine the time of a kernel step moves by ±30% from one minute to the next (the clock,
and other tenants' use of the shared L3 cache); ``bench_probe.py`` runs each contender in a fresh process,
seconds to minutes apart, so its whole-epoch figures cannot tell a 10% change from that drift. Here every
contender is built in this process (``qrprobe._native``, its own cache file per source) and the contenders
take turns, a few hundred milliseconds each:

- each round draws one permutation of the training rows; every contender runs ``--steps`` SGD steps over its
  first batches on its own weights (they train on from round to round: after R rounds each has taken R ×
  steps steps of the same batches), then one validation pass over the validation split; the order of the
  contenders rotates from round to round;
- printed per contender: the median ms per training step and seconds per validation pass, and the epoch they
  imply (steps per epoch × ms per step + validation); for each contender after the first, the first's time
  over its time, round by round (median and quartiles: above 1, faster than the first), for the steps and
  for the validation pass separately;
- with ``--busy``, every round runs the contenders twice, once quiet and once beside a busy-looping process
  (started for that half of the round; the halves' order alternates), and each contender's busy epoch over
  its quiet epoch is taken round by round;
- every contender runs on the same arrays, its weights copied in before its turn and out after (where a table
  sits in memory changes its cache behaviour: the same validation code in two builds measured 1.3× apart
  here on arrays of their own, 1.00× on shared arrays);
- at the end, the largest difference between each contender's weights and the first's: float32 rounding
  (≲ 1e-5) for kernels that compute the same update, more where an edit changed the results.

Contenders: ``.`` (this checkout's ``probe_sgd.c``), ``@REV`` (as committed at git revision REV), or the path
of a C file (a hand-edited copy). Data: as ``bench_probe.py`` (generated once per shape under ``--keep-data``).

    python benchmarks/ab_probe_kernel.py . @HEAD --threads 2 --rounds 30 --steps 50 --keep-data DATA_DIR
    python benchmarks/ab_probe_kernel.py . my_edit.c --threads 1 --busy    # also beside a busy-looping process
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_probe import add_shape_arguments, kernel_source_at, kernel_split, quartiles  # a sibling script


def _source(spec: str) -> Path:
    """The C file a contender names."""
    from qrprobe.engine.probe import kernel

    if spec == ".":
        return kernel.SOURCES[0]
    if spec.startswith("@"):
        return kernel_source_at(spec[1:])
    return Path(spec)


def _build(spec: str):
    """The contender's library, its C signatures declared."""
    from qrprobe._native import load_library
    from qrprobe.engine.probe import kernel

    lib, why = load_library("probe_sgd", (_source(spec),), abi_symbol="qr_probe_abi_version",
                            abi_version=kernel.ABI, flags=kernel.FLAGS)
    if lib is None:
        raise SystemExit(f"contender {spec!r}: the kernel could not be built: {why}")
    return kernel.declare(lib)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("contenders", nargs="+", help="'.', '@REV' or a C file; the first is the reference")
    add_shape_arguments(parser)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=50, help="SGD steps per contender per round")
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--busy", action="store_true",
                        help="every round also runs the contenders beside a busy-looping process (a core taken)")
    args = parser.parse_args()
    if len(args.contenders) < 2:
        parser.error("name two contenders or more: the first is the reference")
    if args.rounds < 1 or args.steps < 1:
        parser.error("--rounds and --steps must be at least 1")
    for spec in args.contenders:
        if spec != "." and not spec.startswith("@") and not Path(spec).is_file():
            parser.error(f"contender {spec!r}: no such file (expected '.', '@REV' or the path of a C file)")

    from qrprobe.engine.probe import kernel

    libs = [_build(spec) for spec in args.contenders]
    x, y, xv, yv = kernel_split(args)
    batch = 512
    steps_per_epoch = -(-x.shape[0] // batch)
    steps = min(args.steps, steps_per_epoch)
    val = kernel.KernelRows(xv, yv)
    sgds = [kernel.KernelSGD(x, y, args.k, batch, 0.9, 3e-6, args.threads, library=lib) for lib in libs]
    # Every contender runs on the same arrays (its state copied in before its turn and out after): where each
    # table sits in memory changes its cache behaviour, by ±30% here, and would otherwise be measured as code.
    shared = all(sgd.w.shape == sgds[0].w.shape for sgd in sgds)
    work_w, work_u = np.zeros_like(sgds[0].w), np.zeros_like(sgds[0].u)
    saved = [(sgd.w, sgd.u) for sgd in sgds]
    if shared:
        for sgd in sgds:
            sgd.w, sgd.u = work_w, work_u
    else:
        print("the contenders' tiles differ in width: each runs on its own arrays (placement not controlled)",
              file=sys.stderr)
    states = (False, True) if args.busy else (False,)
    train = {(i, busy): [] for i in range(len(libs)) for busy in states}  # ms per step, per round
    valid = {(i, busy): [] for i in range(len(libs)) for busy in states}  # s per validation pass, per round
    rng = np.random.default_rng(0)
    for round_ in range(args.rounds):
        perm = rng.permutation(x.shape[0])[:steps * batch].astype(np.int64)
        order = list(range(len(libs)))
        order = order[round_ % len(order):] + order[:round_ % len(order)]
        for busy in states if round_ % 2 == 0 else states[::-1]:
            hog = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if busy else None
            try:
                if hog is not None:
                    time.sleep(0.3)  # the interpreter started and spinning
                for i in order:
                    if shared:
                        np.copyto(work_w, saved[i][0])
                        np.copyto(work_u, saved[i][1])
                    proba = np.empty(len(perm), dtype=np.float32)
                    t = time.perf_counter()
                    sgds[i].epoch(perm, 3.5, proba)
                    train[i, busy].append((time.perf_counter() - t) / steps * 1e3)
                    t = time.perf_counter()
                    sgds[i].mean_loss(val)
                    valid[i, busy].append(time.perf_counter() - t)
                    if shared:
                        np.copyto(saved[i][0], work_w)
                        np.copyto(saved[i][1], work_u)
            finally:
                if hog is not None:
                    hog.kill()
                    hog.wait()

    def epoch_s(i: int, busy: bool) -> list[float]:
        return [ms * steps_per_epoch / 1e3 + v for ms, v in zip(train[i, busy], valid[i, busy], strict=True)]

    print(f"data: N={args.n} M={args.concepts} ones/row={args.ones} K={args.k}; {len(y)} training rows "
          f"({steps_per_epoch} steps of {batch}), {len(yv)} validation rows; {args.threads} thread(s); "
          f"{args.rounds} rounds of {steps} steps per contender{', quiet and beside a busy core' if args.busy else ''}")
    print()
    print("| contender | busy core | ms/step (median) | validation s (median) | s/epoch implied | steps: first/this "
          "(median, quartiles) | validation: first/this | busy/quiet epoch |")
    print("|---|---|---|---|---|---|---|---|")
    for busy in states:
        for i, spec in enumerate(args.contenders):
            step_ms, val_s = statistics.median(train[i, busy]), statistics.median(valid[i, busy])
            ratios = ["–", "–"]
            if i > 0:
                ratios = [quartiles([a / b for a, b in zip(train[0, busy], train[i, busy], strict=True)]),
                          quartiles([a / b for a, b in zip(valid[0, busy], valid[i, busy], strict=True)])]
            slowdown = "–"
            if busy:
                slowdown = quartiles([b / q for q, b in zip(epoch_s(i, False), epoch_s(i, True), strict=True)])
            print(f"| {spec} | {'yes' if busy else 'no'} | {step_ms:.3f} | {val_s:.4f} | "
                  f"{statistics.median(epoch_s(i, busy)):.2f} | {' | '.join(ratios)} | {slowdown} |")
    for sgd, (w, u) in zip(sgds, saved, strict=True):
        sgd.w, sgd.u = w, u
    ref = sgds[0].weight()
    print()
    for sgd, spec in zip(sgds[1:], args.contenders[1:], strict=True):
        print(f"{spec}: largest weight difference from {args.contenders[0]}: "
              f"{float(np.abs(sgd.weight() - ref).max()):.3g}")


if __name__ == "__main__":
    main()
