"""How long an offline hub name takes to fail: the hub libraries alone vs through qrprobe (issue 11, class 9).

Run on a machine without internet (name resolution fails): for each hub family, the library's own call (its
retries) and qrprobe's ``create_representation`` (one connection attempt, then the library's offline mode)
alternate in fresh processes with empty caches; only the call is timed, not the imports. Prints seconds per
attempt and the ratio, side by side.

    python benchmarks/bench_offline.py --repeats 2
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# family -> (the library's own call, the same model through qrprobe)
CASES = {
    "timm": ("import timm\ncall = lambda: timm.create_model('resnet18', pretrained=True)",
             "from qrprobe.models import create_representation\ncall = lambda: create_representation('timm:resnet18')"),
    "open_clip": ("import open_clip\ncall = lambda: open_clip.create_model_and_transforms('RN50', pretrained='openai')",
                  "from qrprobe.models import create_representation\n"
                  "call = lambda: create_representation('open_clip:RN50:openai')"),
    "torchvision": ("import torchvision\ncall = lambda: torchvision.models.get_model('resnet18', weights='DEFAULT')",
                    "from qrprobe.models import create_representation\n"
                    "call = lambda: create_representation('torchvision:resnet18')"),
}

_TIMER = """
import json, sys, time
{setup}
start = time.perf_counter()
try:
    call()
    outcome = "loaded"
except Exception as exc:
    outcome = type(exc).__name__
print(json.dumps({{"seconds": time.perf_counter() - start, "outcome": outcome}}))
"""


def _time(setup: str, cache: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "QRPROBE_OFFLINE")}
    env.update(PYTHONPATH=str(REPO / "src"), HF_HOME=f"{cache}/hf", TORCH_HOME=f"{cache}/torch")
    out = subprocess.run([sys.executable, "-c", _TIMER.format(setup=setup)], env=env, capture_output=True,
                         text=True, timeout=900)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--families", default=",".join(CASES))
    args = parser.parse_args()
    print("| family | library alone (s) | through qrprobe (s) | library / qrprobe | outcomes |")
    print("|---|---|---|---|---|")
    for family in args.families.split(","):
        library, ours = CASES[family]
        times: dict[str, list[float]] = {"library": [], "qrprobe": []}
        outcomes = set()
        for _ in range(args.repeats):  # interleaved: the two sides see the same load
            for side, setup in (("library", library), ("qrprobe", ours)):
                with tempfile.TemporaryDirectory() as cache:
                    run = _time(setup, cache)
                times[side].append(run["seconds"])
                outcomes.add(f"{side}: {run['outcome']}")
        lib, our = (sum(v) / len(v) for v in (times["library"], times["qrprobe"]))
        print(f"| {family} | {lib:.2f} | {our:.2f} | {lib / our:.0f}× | {'; '.join(sorted(outcomes))} |",
              flush=True)


if __name__ == "__main__":
    main()
