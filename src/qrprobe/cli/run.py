"""``qrprobe run STUDY.yaml`` and ``qrprobe demo``: the whole study in one command, cached stage by stage."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from .options import add_deprecated_flag, add_quiet

RUN_DESCRIPTION = """\
Run a whole study written as YAML: extract the features of every model, label the images with every
expert, evaluate each model by quantized reverse probing, run the analyses and write the HTML report.
The config is checked completely first; an error names its file:line:column and the valid keys.

Every stage's output is named by a hash of its inputs and configuration, so re-running an unchanged study
does no work, changing one expert relabels only that expert (and re-evaluates what depends on it), and a
killed run resumes. --force STAGE recomputes a stage anyway, --force alone (or --force all) every stage.
`qrprobe example --study` writes a commented template; docs/study-reference.md lists every key.

--executor slurm runs each stage item as a Slurm job (pip install 'qrprobe[slurm]'): one per model extraction,
expert labelling, model evaluation and analysis, then the report, each with the resources of its stage
(`resources:` in the study file) and depending on the jobs of its inputs. Finished items are never submitted
again, so resubmitting after a failure or a change runs only what is missing. The output folder must be on a
file system that every node sees."""

DEMO_DESCRIPTION = """\
The built-in demo, offline: 1,484 public-domain clip-art images bundled with qrprobe, studied with
EfficientNet-Lite0 (real ImageNet weights), its random-initialised twin and a pixel baseline, labelled with
the offline experts (ground-truth categories, ImageNet classes, colours, image statistics). It prints the
ranking and the path of the HTML report. About 40 seconds on a 2-core laptop CPU (36-40 s measured on a quiet
2-core AMD EPYC, longer under load); a second run reuses every stage and takes seconds."""

STAGES = ("extract", "label", "evaluate", "analyses", "report")


def add_parser(subparsers) -> None:
    run = subparsers.add_parser("run", help="run a whole study from a YAML config (cached, resumable)",
                                description=RUN_DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    run.add_argument("config", metavar="STUDY.yaml", help="the study config")
    _common(run, "the study's `output` (default: <name>-out beside the config)")
    ex = run.add_argument_group("executor")
    ex.add_argument("--executor", choices=("local", "slurm"), default="local",
                    help="local: every stage in this process; slurm: each stage item a Slurm job through submitit "
                         "[default: local]")
    ex.add_argument("--cluster", choices=("slurm", "local"), default="slurm",
                    help="with --executor slurm, where submitit runs the jobs: slurm (sbatch) or local (each job a "
                         "process on this machine, to try a study's jobs without a cluster) [default: slurm]")
    ex.add_argument("--jobs-dir", metavar="DIR", default=None,
                    help="submitit's folder for the jobs' pickles and logs [default: OUT/jobs]")
    ex.add_argument("--no-wait", dest="wait", action="store_false",
                    help="on Slurm, submit the jobs (with their dependencies) and return [default: follow them "
                         "until all have ended]")
    run.set_defaults(func=_run)
    demo = subparsers.add_parser("demo", help="run the built-in demo study (offline, 1-2 minutes on a laptop CPU)",
                                 description=DEMO_DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    _common(demo, "qrprobe-demo in the current directory")
    demo.set_defaults(func=_demo)


def _common(parser: argparse.ArgumentParser, default_out: str) -> None:
    parser.add_argument("-o", "--out", metavar="DIR", help=f"output directory [default: {default_out}]")
    add_deprecated_flag(parser, "--output", "-o/--out", "out")
    parser.add_argument("--force", action="append", default=[], nargs="?", const="all", type=_stage,
                        metavar="STAGE",
                        help=f"recompute this stage even if cached (repeatable; one of {', '.join(STAGES)}, or "
                             "all); --force alone, after the study file, recomputes every stage [default: none]")
    parser.add_argument("--device", help="override the study's device: auto, cpu, cuda or cuda:N "
                                         "[default: the study's]")
    add_quiet(parser)


def _stage(value: str) -> str:
    """A ``--force`` value: a stage or ``all`` (a study file given right after a bare --force gets a hint)."""
    if value in (*STAGES, "all"):
        return value
    if value.endswith((".yaml", ".yml")):
        raise argparse.ArgumentTypeError(f"{value!r} is not a stage; to recompute every stage, put --force after "
                                         f"the study file: qrprobe run {value} --force")
    raise argparse.ArgumentTypeError(f"unknown stage {value!r}; expected one of {', '.join(STAGES)}, or all")


def _execute(study, output: Path, args: argparse.Namespace) -> int:
    import dataclasses

    from ..study.runner import run_study

    if args.device:
        study = dataclasses.replace(study, device=args.device)
    start = time.perf_counter()
    outcome = run_study(study, output=output, force=args.force, progress=not args.quiet)
    print(outcome.ranking)
    ran = sum(1 for e in outcome.log if not e["reused"])
    if not args.quiet:
        print(f"\n{ran} stage item(s) computed, {len(outcome.log) - ran} reused, in "
              f"{time.perf_counter() - start:.0f} s", file=sys.stderr)
    if outcome.report is not None:
        print(f"report: {outcome.report}")
    return 0


def _run(args: argparse.Namespace) -> int:
    from ..study.load import load_study
    from ..study.runner import default_output

    config = Path(args.config)
    study = load_study(config)
    output = Path(args.out) if args.out else default_output(config, study)
    if args.executor == "slurm":
        return _submit(study, output, args)
    return _execute(study, output, args)


def _submit(study, output: Path, args: argparse.Namespace) -> int:
    import dataclasses

    from ..study.slurm import submit_study

    if args.device:
        study = dataclasses.replace(study, device=args.device)
    start = time.perf_counter()
    sub = submit_study(study, output, cluster=args.cluster, folder=args.jobs_dir, force=args.force, wait=args.wait)
    done = len(sub.finished_before)
    if not sub.jobs:
        print(f"all {done} stage item(s) were finished already", file=sys.stderr)
    elif not args.wait and args.cluster == "slurm":
        print(f"submitted {len(sub.jobs)} job(s) ({done} item(s) were finished already); their logs are in "
              f"{args.jobs_dir or output / 'jobs'}. When they have ended, the same command submits only what did "
              "not finish (not while they are queued or running: it does not know about jobs in flight)",
              file=sys.stderr)
        return 0
    else:
        print(f"\n{len(sub.completed)} job(s) completed, {len(sub.failed)} failed, {len(sub.blocked)} not run "
              f"(an input failed), {done} item(s) finished before, in {time.perf_counter() - start:.0f} s",
              file=sys.stderr)
    if sub.failed or sub.blocked:
        print("some jobs failed; fix the cause and run the same command again (finished items are kept)",
              file=sys.stderr)
        return 1
    ranking = output / "ranking.md"
    if ranking.is_file():
        print(ranking.read_text().rstrip())
    if study.report.enabled and (output / "report.html").is_file():
        print(f"report: {output / 'report.html'}")
    return 0


def _demo(args: argparse.Namespace) -> int:
    from ..study.demo import demo_study

    return _execute(demo_study(), Path(args.out or "qrprobe-demo"), args)
