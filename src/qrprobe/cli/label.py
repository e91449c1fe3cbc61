"""``qrprobe label IMAGES --experts a,b,... -o DIR``: label an image collection with experts into a concept bank."""

from __future__ import annotations

import argparse
import sys

from .._atomic import check_not_an_input
from ..errors import QRProbeInputError
from .options import (
    add_backend,
    add_config_groups,
    add_device,
    add_output,
    add_quiet,
    config_from_args,
    ray_options_from_args,
)

HELP = "label images with concept experts (labels, colours, text, faces, ImageNet classes, ...)"
DESCRIPTION = """\
Run the chosen EXPERTS over IMAGES (each image is decoded once for all of them) and write a concept bank
(DIR): a sparse binary matrix images x concepts, a concept table (name, group, expert, threshold, rule) and a
manifest with every expert's configuration, the images that could not be decoded, and timings.

IMAGES   a folder (class sub-folders become the `labels` expert's concepts), a file list
         (.csv/.txt: image_id,path[,label]) or webdataset tar shards
EXPERTS  comma-separated names; `qrprobe experts` lists them, their groups and what each needs; `paper`: the
         closest-to-paper battery that can run here (the experts left out are named, with why)

Options of an expert: --set EXPERT.OPTION=VALUE (e.g. --set color.min_fraction=0.1); its weights:
--weights EXPERT=PATH; its concept group: --group EXPERT=GROUP. A CLIP vocabulary of your own becomes an
expert with --vocab NAME=FILE (one concept per line; --set NAME.template="a photo of {}.").
An interrupted run resumes where it stopped when the same command is run again. --backend ray decodes in Ray
CPU tasks and runs the experts in a Ray actor pool (one GPU per actor when the cluster has GPUs): same bank."""


def _pairs(values: list[str] | None, flag: str, sep: str = "=") -> dict[str, str]:
    out: dict[str, str] = {}
    for v in values or []:
        key, eq, value = v.partition(sep)
        if not eq or not key.strip():
            raise QRProbeInputError(f"{flag}: expected EXPERT{sep}VALUE, got {v!r}")
        out[key.strip()] = value.strip()
    return out


def _options(values: list[str] | None) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {}
    for v in values or []:
        key, eq, value = v.partition("=")
        expert, dot, option = key.partition(".")
        if not eq or not dot or not expert.strip() or not option.strip():
            raise QRProbeInputError(f"--set: expected EXPERT.OPTION=VALUE, got {v!r}")
        out.setdefault(expert.strip(), {})[option.strip()] = value
    return out


def add_parser(subparsers) -> argparse.ArgumentParser:
    from ..experts.label_config import LabelConfig

    p = subparsers.add_parser("label", help=HELP, description=DESCRIPTION,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("images", metavar="IMAGES", help="folder, file list or tar shards")
    p.add_argument("--experts", required=True, metavar="A,B,...", help="experts to run (see `qrprobe experts`)")
    add_output(p, "concept-bank directory")
    e = p.add_argument_group("experts")
    e.add_argument("--set", action="append", metavar="EXPERT.OPTION=VALUE", help="an expert option (repeatable)")
    e.add_argument("--weights", action="append", metavar="EXPERT=PATH", help="an expert's weights file (repeatable)")
    e.add_argument("--group", action="append", metavar="EXPERT=GROUP",
                   help="put an expert's concepts in another group (repeatable)")
    e.add_argument("--vocab", action="append", metavar="NAME=FILE",
                   help="a CLIP zero-shot expert NAME over your own concepts (repeatable; added to --experts)")
    e.add_argument("--labels-table", metavar="FILE",
                   help="ground truth for the `labels` expert from a table image_id,concept[,group]")
    add_device(e)
    add_config_groups(p, LabelConfig, skip=("backend",))  # the group run
    add_backend(p, LabelConfig)
    add_quiet(p)
    p.set_defaults(func=run)
    return p


def build_request(args: argparse.Namespace) -> dict:
    """Turn the command line into :func:`qrprobe.experts.label.run_labelling` keyword arguments."""
    from ..experts.registry import expert_class, parse_expert_list

    options = _options(args.set)
    if args.experts.strip().lower() == "paper":
        import sys

        from ..experts.paper_set import paper_experts

        selection = paper_experts()
        names = [name for name, _ in selection.experts]
        for name, defaults in selection.experts:
            options[name] = {**defaults, **options.get(name, {})}
        if selection.note():
            print(f"qrprobe label: {selection.note()}", file=sys.stderr)
    else:
        names = parse_expert_list(args.experts)
    kinds: dict[str, str] = {}
    for name, path in _pairs(args.vocab, "--vocab").items():
        kinds[name] = "clip"
        options.setdefault(name, {})["vocab"] = path
        if name not in names:
            names.append(name)
    if args.labels_table:
        if "labels" not in names:
            raise QRProbeInputError("--labels-table needs the `labels` expert in --experts")
        options.setdefault("labels", {})["table"] = args.labels_table
    if args.device:
        from ..experts.registry import expert_parameters

        for name in names:
            if "device" in expert_parameters(expert_class(kinds.get(name, name))):
                options.setdefault(name, {}).setdefault("device", args.device)
    return {"experts": names, "options": options, "weights": _pairs(args.weights, "--weights"),
            "groups": _pairs(args.group, "--group"), "kinds": kinds}


def run(args: argparse.Namespace) -> int:
    from ..experts.label import run_labelling
    from ..experts.label_config import LabelConfig

    request = build_request(args)
    check_not_an_input(args.out, {"IMAGES": args.images, "--labels-table": args.labels_table,
                                  "--weights": list(request["weights"].values()),
                                  "--vocab": [o["vocab"] for o in request["options"].values() if "vocab" in o]},
                       images=args.images, what="--out")
    config = config_from_args(LabelConfig, args, overwrite=args.overwrite, progress=not args.quiet,
                              ray=ray_options_from_args(args))
    try:
        result = run_labelling(args.images, request.pop("experts"), output=args.out, config=config, **request)
    except KeyboardInterrupt:
        print(f"qrprobe label: interrupted; the finished chunks are kept, run the same command again to resume "
              f"into {args.out}", file=sys.stderr)
        return 130
    bank, report = result.bank, result.report
    if report.reused:
        print(f"reused the complete concept bank {args.out} ({bank.n_images} images x {bank.n_concepts} concepts; "
              "same images and experts)")
    else:
        print(f"wrote a concept bank of {bank.n_images} images x {bank.n_concepts} concepts to {args.out}"
              + (f" (resumed {report.resumed_images} images)" if report.resumed_images else ""))
    _print_summary(bank, report)
    return 0


def _print_summary(bank, report) -> None:
    freq = bank.frequencies()
    table = bank.concepts.assign(freq=freq)
    speeds = report.images_per_second() if report.images_this_run else {}
    for (expert, group), part in table.groupby(["expert", "group"], sort=False):
        rate = speeds.get(expert)
        speed = f", {rate:.1f} images/s" if rate is not None and rate != float("inf") else ""
        top = part.sort_values("freq", ascending=False).head(3)
        common = ", ".join(f"{n} {f:.0%}" for n, f in zip(top["name"], top["freq"], strict=True))
        print(f"  [{group}/{expert}] {len(part)} concepts, mean frequency {part['freq'].mean():.1%} "
              f"(most common: {common}){speed}")
    for e in bank.info.get("experts", []):
        if (e.get("config") or {}).get("pretrained") == "random" and not (e.get("config") or {}).get("weights"):
            print(f"warning: expert {e['name']!r} ran with random weights (pretrained=random): its concepts "
                  "carry no meaning; use it for tests only", file=sys.stderr)
    if report.never_present:
        print(f"note: {len(report.never_present)} concept(s) are present in no image, e.g. "
              f"{report.never_present[:5]}", file=sys.stderr)
    if report.always_present:
        print(f"note: {len(report.always_present)} concept(s) are present in every image, e.g. "
              f"{report.always_present[:5]}", file=sys.stderr)
    if report.skipped:
        print(f"skipped {len(report.skipped)} image(s) that could not be read (listed in the manifest under "
              "info.labelling.skipped):", file=sys.stderr)
        for item in report.skipped[:10]:
            print(f"  {item['path'] or item['image_id']}: {item['reason']}", file=sys.stderr)
        if len(report.skipped) > 10:
            print(f"  ... and {len(report.skipped) - 10} more", file=sys.stderr)
    if report.rejected:
        print(f"ignored {len(report.rejected)} file(s) that are not images, e.g. "
              f"{[r['image_id'] for r in report.rejected[:3]]}", file=sys.stderr)
