"""The reverse probe's SGD epoch at ImageNet scale: the compiled kernel vs today's torch path vs older probes.

Generated data (``qrprobe.synthetic.make_imagenet_shaped``): N images, M concepts with ~``ones`` active per
row, the generator's K latent centres as the cluster ids; the paper's split (64% train, 16% validation). Each
contender trains in a fresh subprocess for ``--steps`` SGD steps (batch 512, the paper's schedule) and then
evaluates the validation loss once, as every epoch does; seconds per epoch = (train seconds per step × steps
per epoch) + validation seconds (the steps of an epoch all cost the same: same batch size, same table, so a
measured part of an epoch scales per sample). Contenders run in interleaved rounds, and the load average is
recorded before each run (the machine may be shared: compare side by side, not across runs). "train CPU s/step"
is the process's CPU time (all its threads) per training step. "peak RSS" is the subprocess's maximum resident
memory (data, table and buffers; the same data in every contender).

    kernel   the compiled probe (``qrprobe.engine.probe.kernel.KernelSGD``: one C call per epoch, column tiles),
             ``--threads`` worker threads — what ``ReverseProbe`` runs on the CPU where it can
    torch    today's torch path of ``ReverseProbe`` (fused sparse steps, lazy rows; ``ours`` in earlier runs),
             ``--threads`` intra-op threads — the fallback where the kernel cannot be built
    before   the probe before the fused steps (autograd through ``embedding_bag``, ``torch.optim.SGD``)
    dense    ``torch.nn.Linear`` on each batch densified (B × M floats; the dense N × M matrix would not fit)
    kernel@REV  the compiled probe built from ``probe_sgd.c`` as it was at git revision REV (e.g. ``HEAD``):
             a kernel change measured side by side with the kernel before it, same data, same steps (the
             revision's kernel must read the same table layout, ``ABI`` in kernel.py)

The table ends with each kernel row's speed-up over the torch row of the same threads and load (medians; the
torch row on one thread where that thread count was not run), and with ratios taken round by round (each round
runs every contender once, the order rotated from round to round, so a contender is not always first), then
their median: each ``kernel@REV`` row's time over the kernel row's of the same threads, and with ``--busy``
each kernel row's busy time over its quiet time. The clock of a shared virtual machine drifts over minutes;
ratios within a round cancel most of that drift, ratios of medians do not.
``--busy`` adds to every round each contender run beside a busy-looping process (another process taking a core).
``--profile`` prints torch's profiler table for ``torch`` (self CPU time per operation). ``--device cuda``
runs the torch contenders on the GPU (batches cut on the device; seconds include a warm-up-free timed pass).

Usage (the issue's shape)::

    python benchmarks/bench_probe.py --n 1280000 --concepts 2500 --ones 30 --k 1000 --steps 300 --rounds 2 \
        --contenders kernel:1,kernel:2,torch:1,torch:2 --busy
    python benchmarks/bench_probe.py --steps 200 --rounds 8 --contenders kernel:2,kernel@HEAD:2   # a kernel edit

A kernel edit smaller than ~30% is lost in a shared machine's drift between runs: measure it with
``benchmarks/ab_probe_kernel.py`` (the contenders alternated in one process on the same arrays).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _data(args: argparse.Namespace, folder: Path) -> None:
    import numpy as np
    import scipy.sparse as sp

    from qrprobe.engine.probe.split import stratified_split
    from qrprobe.synthetic import make_imagenet_shaped

    features, concepts = make_imagenet_shaped(args.n, 4, args.concepts, args.ones, args.k, noise=0.0)
    _, labels = np.unique(features, axis=0, return_inverse=True)  # noise 0: one feature vector per centre
    split = stratified_split(labels.ravel(), 0)
    for name in ("train", "val"):
        rows = getattr(split, name)
        sp.save_npz(folder / f"{name}.npz", concepts[rows], compressed=False)
        np.save(folder / f"{name}-labels.npy", labels.ravel()[rows])


def add_shape_arguments(parser: argparse.ArgumentParser) -> None:
    """The generated problem's shape (default: the issue's, 1.28M × 2,500 with 30 active → 1,000) and
    ``--keep-data``: the arguments every probe benchmark takes."""
    parser.add_argument("--n", type=int, default=1_280_000)
    parser.add_argument("--concepts", type=int, default=2500)
    parser.add_argument("--ones", type=int, default=30)
    parser.add_argument("--k", type=int, default=1000)
    parser.add_argument("--keep-data", metavar="DIR", help="keep the generated data under DIR and reuse it")


def quartiles(values: list[float], digits: int = 3) -> str:
    """"median (lower quartile–upper quartile)" of ``values``, with ``digits`` decimals."""
    import statistics

    q1, q2, q3 = statistics.quantiles(values, n=4) if len(values) > 1 else (values[0],) * 3
    return f"{q2:.{digits}f} ({q1:.{digits}f}–{q3:.{digits}f})"


def data_folder(args: argparse.Namespace, tmp: Path) -> Path:
    """The folder of the generated data (``train``/``val`` CSR and labels): under ``args.keep_data``, one folder
    per shape, generated once and reused by later runs; else ``tmp``. Generated here where it is missing."""
    data = Path(tmp)
    if args.keep_data:
        data = Path(args.keep_data) / f"n{args.n}-m{args.concepts}-o{args.ones}-k{args.k}"
    if not (data / "val-labels.npy").exists():
        data.mkdir(parents=True, exist_ok=True)
        _data(args, data)
    return data


def kernel_split(args: argparse.Namespace) -> tuple:
    """The generated training and validation rows as the kernel reads them: ``(x, y, xv, yv)``, CSR with the
    bias column and int labels (the data generated for ``args``' shape where ``--keep-data`` has none)."""
    import numpy as np
    import scipy.sparse as sp

    from qrprobe.engine.probe.sgd import with_bias_column

    with tempfile.TemporaryDirectory(prefix="qrprobe-probe-data-") as tmp:
        data = data_folder(args, Path(tmp))
        x, xv = (with_bias_column(sp.load_npz(data / f"{s}.npz").tocsr()) for s in ("train", "val"))
        y, yv = (np.load(data / f"{s}-labels.npy") for s in ("train", "val"))
    return x, y, xv, yv


def _run(args: argparse.Namespace) -> dict:
    """One contender in this process: ``args.steps`` SGD steps, then one validation pass."""
    import numpy as np
    import scipy.sparse as sp
    import torch

    torch.set_num_threads(args.threads)
    if args.device == "cuda":
        torch.cuda.synchronize()
    folder = Path(args.data)
    x, xv = (sp.load_npz(folder / f"{s}.npz").tocsr() for s in ("train", "val"))
    y, yv = (np.load(folder / f"{s}-labels.npy") for s in ("train", "val"))
    n_steps = -(-x.shape[0] // 512)
    steps = min(args.steps, n_steps)
    if args.kernel_rev:
        _kernel_from_revision(args.kernel_rev)
    if args.run == "kernel":
        (train_s, train_cpu), val_s = _kernel(x, y, xv, yv, args, steps)
    elif args.run in ("torch", "ours"):
        (train_s, train_cpu), val_s = _ours(x, y, xv, yv, args, steps)
    else:
        (train_s, train_cpu), val_s = _reference(x, y, xv, yv, args, steps, dense=args.run == "dense")
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB
    run = f"{args.run}@{args.kernel_rev}" if args.kernel_rev else args.run
    return {"run": run, "threads": args.threads, "steps": steps, "train_s_per_step": train_s / steps,
            "val_s": val_s, "s_per_epoch": train_s / steps * n_steps + val_s, "steps_per_epoch": n_steps,
            "train_cpu_s_per_step": train_cpu / steps, "peak_rss_gib": peak / 2**30}


def kernel_source_at(rev: str) -> Path:
    """``probe_sgd.c`` as committed at git revision ``rev``, written to a temporary folder removed at exit (the
    library built from it is cached elsewhere, by ``qrprobe._native``)."""
    from qrprobe.engine.probe import kernel

    repo = Path(__file__).resolve().parent.parent
    relative = kernel.SOURCES[0].resolve().relative_to(repo)
    source = subprocess.run(["git", "-C", str(repo), "show", f"{rev}:{relative.as_posix()}"], capture_output=True,
                            text=True)
    if source.returncode != 0:  # bad input: exit code 2, as argparse's errors
        print(f"kernel revision {rev}: git could not show {relative}: {source.stderr.strip()}", file=sys.stderr)
        raise SystemExit(2)
    import atexit
    import shutil

    folder = Path(tempfile.mkdtemp(prefix="qrprobe-kernel-rev-"))
    atexit.register(shutil.rmtree, folder, True)
    (folder / "probe_sgd.c").write_text(source.stdout)
    return folder / "probe_sgd.c"


def _kernel_from_revision(rev: str) -> None:
    """Point the compiled probe at ``probe_sgd.c`` as committed at ``rev`` (built into its own cache file)."""
    from qrprobe.engine.probe import kernel

    kernel.SOURCES = (kernel_source_at(rev),)


def _kernel(x, y, xv, yv, args, steps):
    """The compiled probe: one epoch call over ``steps`` batches, then the validation loss."""
    import numpy as np
    import torch

    from qrprobe.engine.probe import kernel
    from qrprobe.engine.probe.sgd import with_bias_column

    if not kernel.available():
        raise SystemExit(f"the compiled probe cannot run here: {kernel.unavailable()}")
    sgd = kernel.KernelSGD(with_bias_column(x), y, args.k, 512, 0.9, 3e-6, args.threads)
    val = kernel.KernelRows(with_bias_column(xv), yv)
    perm = torch.randperm(x.shape[0], generator=torch.Generator().manual_seed(0)).numpy()[:steps * 512]
    proba = np.empty(len(perm), dtype=np.float32)
    t, cpu = time.perf_counter(), time.process_time()
    sgd.epoch(perm, 3.5, proba)
    train_s = (time.perf_counter() - t, time.process_time() - cpu)
    t = time.perf_counter()
    sgd.mean_loss(val)
    return train_s, time.perf_counter() - t


def _ours(x, y, xv, yv, args, steps):
    import torch

    from qrprobe.engine.config import ProbeConfig
    from qrprobe.engine.probe.reverse_probe import ConceptRows, ReverseProbe
    from qrprobe.engine.probe.sgd import (
        DeviceBatches,
        HostBatches,
        MomentumTable,
        mean_loss_from_proba,
        train_step,
        with_bias_column,
    )

    dev = torch.device(args.device)
    probe = ReverseProbe(ProbeConfig(), device=args.device)
    table_x = with_bias_column(x)
    if dev.type == "cuda":
        batches = DeviceBatches(table_x, y, 512, dev)
    else:
        batches = HostBatches(table_x, y, 512, probe.lazy_fraction)
    table = MomentumTable(table_x.shape[1], args.k, 0.9, 3e-6, dev, lazy=getattr(batches, "lazy", False))
    table.start_epoch(3.5, steps)
    minus, ar = torch.full((512,), -1.0, device=dev), torch.arange(512, device=dev)
    perm = torch.randperm(x.shape[0], generator=torch.Generator().manual_seed(0)).numpy()[:steps * 512]

    true_proba = torch.empty(len(perm), device=dev)

    def work():
        start = 0
        for batch in batches.epoch(perm):
            train_step(table, batch, minus, ar, true_proba[start:start + batch.size])
            start += batch.size
        table.finish_epoch()
        return mean_loss_from_proba(true_proba)

    if args.profile:
        from torch.profiler import ProfilerActivity, profile

        activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if dev.type == "cuda" else [])
        with profile(activities=activities) as prof:
            work()
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=14), file=sys.stderr)
        return (1.0, 1.0), 0.0
    work() if dev.type == "cuda" else None  # CUDA: a warm-up pass (kernels, allocator), not timed
    t, cpu = time.perf_counter(), time.process_time()
    work()
    train_s = (time.perf_counter() - t, time.process_time() - cpu)
    t = time.perf_counter()
    probe._mean_loss(ConceptRows(xv, dev), torch.from_numpy(yv).to(dev), table.weight[:-1], table.weight[-1])
    return train_s, time.perf_counter() - t


def _reference(x, y, xv, yv, args, steps, dense: bool):
    """The previous probe's loop (autograd + torch.optim.SGD), or the same with a dense nn.Linear."""
    import numpy as np
    import torch
    import torch.nn.functional as F

    dev = torch.device(args.device)
    m, k = x.shape[1], args.k
    indptr = torch.from_numpy(x.indptr.astype(np.int64)).to(dev)
    indices = torch.from_numpy(x.indices.astype(np.int64)).to(dev)
    yt = torch.from_numpy(y).to(dev)
    if dense:
        layer = torch.nn.Linear(m, k).to(dev)
        params = list(layer.parameters())
    else:
        weight = torch.zeros(m, k, device=dev, requires_grad=True)
        bias = torch.zeros(k, device=dev, requires_grad=True)
        params = [weight, bias]
    opt = torch.optim.SGD(params, lr=3.5, momentum=0.9, weight_decay=3e-6)
    perm = torch.randperm(x.shape[0], generator=torch.Generator().manual_seed(0)).to(dev)

    def batch(rows):  # the previous SparseRows.batch
        starts = indptr[rows]
        lengths = indptr[rows + 1] - starts
        offsets = torch.cumsum(lengths, 0) - lengths
        total = int(lengths.sum())
        positions = torch.repeat_interleave(starts - offsets, lengths, output_size=total)
        positions += torch.arange(total, device=dev)
        return indices[positions], offsets, lengths

    def logits_of(flat, offsets, lengths):
        if not dense:
            return F.embedding_bag(flat, weight, offsets, mode="sum") + bias
        rows = torch.repeat_interleave(torch.arange(len(offsets), device=dev), lengths)
        x_dense = torch.zeros(len(offsets), m, device=dev)
        x_dense[rows, flat] = 1.0
        return layer(x_dense)

    def run(n_steps):
        for s in range(n_steps):
            idx = perm[s * 512:(s + 1) * 512]
            loss = F.cross_entropy(logits_of(*batch(idx)), yt[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        if dev.type == "cuda":
            torch.cuda.synchronize()

    if dev.type == "cuda":
        run(min(steps, 20))  # warm-up
    t, cpu = time.perf_counter(), time.process_time()
    run(steps)
    train_s = (time.perf_counter() - t, time.process_time() - cpu)
    t = time.perf_counter()
    v_ptr = torch.from_numpy(xv.indptr.astype(np.int64)).to(dev)
    v_idx = torch.from_numpy(xv.indices.astype(np.int64)).to(dev)
    yvt = torch.from_numpy(yv).to(dev)
    with torch.no_grad():
        total = torch.zeros((), device=dev)
        for s in range(0, xv.shape[0], 8192):
            e = min(s + 8192, xv.shape[0])
            lo, hi = int(xv.indptr[s]), int(xv.indptr[e])
            offsets = v_ptr[s:e] - lo
            lengths = v_ptr[s + 1:e + 1] - v_ptr[s:e]
            total += F.cross_entropy(logits_of(v_idx[lo:hi], offsets, lengths), yvt[s:e], reduction="sum")
        float(total)
    return train_s, time.perf_counter() - t


def _subprocess(args, run: str, threads: int, data: Path, busy: bool) -> dict:
    run, _, rev = run.partition("@")
    cmd = [sys.executable, __file__, "--run", run, "--threads", str(threads), "--data", str(data),
           "--k", str(args.k), "--steps", str(args.steps), "--device", args.device]
    if rev:
        cmd += ["--kernel-rev", rev]
    hog = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if busy else None
    load = os.getloadavg()[0]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True)
    finally:
        if hog is not None:
            hog.kill()
            hog.wait()
    if proc.returncode != 0:
        why = (proc.stderr.strip().splitlines() or ["failed"])[-1]
        return {"run": f"{run}@{rev}" if rev else run, "threads": threads, "error": why}
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    out.update(load_before=load, busy=busy)
    return out


def _paired(rows: list[dict], base: tuple, other: tuple) -> str:
    """``other``'s seconds per epoch over ``base``'s, round by round (the two ran minutes apart in the same
    round, so a slow period of a shared machine slows both): the median of the rounds' ratios and their range."""
    def of(key: tuple) -> dict[int, float]:
        run, threads, busy = key
        return {r["round"]: r["s_per_epoch"] for r in rows if r["run"] == run and r["threads"] == threads
                and r.get("busy") == busy and "error" not in r}

    a, b = of(base), of(other)
    ratios = sorted(b[i] / a[i] for i in a.keys() & b.keys())
    if not ratios:
        return "no round with both"
    import statistics

    return f"{statistics.median(ratios):.2f}× (rounds {ratios[0]:.2f}–{ratios[-1]:.2f}, n={len(ratios)})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_shape_arguments(parser)
    parser.add_argument("--steps", type=int, default=300, help="SGD steps timed per run (then extrapolated)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--contenders", default="kernel:1,kernel:2,torch:1,torch:2",
                        help="RUN:THREADS,… with RUN in kernel, torch (alias ours), before, dense")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (every contender on it)")
    parser.add_argument("--busy", action="store_true", help="also run every contender beside a busy loop")
    parser.add_argument("--profile", action="store_true", help="print the profile of ours (1 thread)")
    parser.add_argument("--json", metavar="FILE")
    parser.add_argument("--run", help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--kernel-rev", help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run:
        print(json.dumps(_run(args)))
        return
    contenders = [(c.split(":")[0], int(c.split(":")[1])) for c in args.contenders.split(",")]
    with tempfile.TemporaryDirectory(prefix="qrprobe-bench-probe-") as tmp:
        t = time.perf_counter()
        data = data_folder(args, Path(tmp))
        print(f"data: N={args.n} M={args.concepts} ones/row={args.ones} K={args.k} "
              f"(ready in {time.perf_counter() - t:.0f} s); {args.steps} steps per run; {os.cpu_count()} CPUs",
              flush=True)
        if args.profile:
            subprocess.run([sys.executable, __file__, "--run", "torch", "--threads", "1", "--data", str(data),
                            "--k", str(args.k), "--steps", str(args.steps), "--profile", "--device", args.device])
        rows = []
        runs = [(run, threads, busy) for busy in ((False, True) if args.busy else (False,))
                for run, threads in contenders]
        for round_ in range(args.rounds):
            shift = round_ % len(runs)  # each run in every position in turn: no contender always first
            for run, threads, busy in runs[shift:] + runs[:shift]:
                res = _subprocess(args, run, threads, data, busy)
                res["round"] = round_
                rows.append(res)
                print(f"  {res}", file=sys.stderr, flush=True)
    print()
    print("| contender | threads | busy core | s/epoch (median) | min | train s/step | validation s | train CPU s/step "
          "| peak RSS | load avg |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    import statistics

    medians = {}
    for busy in sorted({r.get("busy", False) for r in rows}):
        for run, threads in contenders:
            got = [r for r in rows if r["run"] == run and r["threads"] == threads and r.get("busy") == busy
                   and "error" not in r]
            if not got:
                print(f"| {run} | {threads} | {busy} | error | | | | | | |")
                continue
            per = [r["s_per_epoch"] for r in got]
            medians[run, threads, busy] = statistics.median(per)
            loads = ", ".join(f"{r['load_before']:.1f}" for r in got)
            print(f"| {run} | {threads} | {'yes' if busy else 'no'} | {statistics.median(per):.2f} | {min(per):.2f} | "
                  f"{statistics.median(r['train_s_per_step'] for r in got) * 1e3:.2f} ms | "
                  f"{statistics.median(r['val_s'] for r in got):.2f} | "
                  f"{statistics.median(r['train_cpu_s_per_step'] for r in got) * 1e3:.2f} ms | "
                  f"{max(r['peak_rss_gib'] for r in got):.2f} GiB | {loads} |")
    print()
    for (run, threads, busy), value in medians.items():
        same = [("torch", threads, busy), ("ours", threads, busy), ("torch", 1, busy), ("ours", 1, busy)]
        base_key = next((key for key in same if key in medians), None)
        state = "busy" if busy else "quiet"
        if run == "kernel" and base_key:
            base = medians[base_key]
            print(f"kernel:{threads} {state}: {value:.2f} s/epoch, {base / value:.1f}× faster than the torch path on "
                  f"{base_key[1]} thread(s) ({base:.2f} s/epoch)")
        if run == "kernel" and busy and ("kernel", threads, False) in medians:
            print(f"kernel:{threads} busy/quiet: {_paired(rows, ('kernel', threads, False), (run, threads, busy))} "
                  f"(medians {value:.2f} / {medians['kernel', threads, False]:.2f} s/epoch)")
        if run == "kernel":
            before = [key[0] for key in medians if key[0].startswith("kernel@") and key[1:] == (threads, busy)]
            for other in before:
                print(f"kernel:{threads} {state}: {other}:{threads} takes "
                      f"{_paired(rows, (run, threads, busy), (other, threads, busy))} the time of kernel:{threads} "
                      f"({medians[other, threads, busy]:.2f} against {value:.2f} s/epoch, medians)")
    if args.json:
        Path(args.json).write_text(json.dumps({"args": vars(args), "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
