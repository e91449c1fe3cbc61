"""``qrprobe run STUDY.yaml --executor slurm``: each stage item of a study as a Slurm job, through submitit.

:func:`submit_study` lists the study's items (:func:`~.items.study_items`), leaves out those already finished
(:func:`~.items.finished_items`: the content-hashed stage directories say so), and submits one job per
remaining item, running :func:`~.items.run_item`, with the resources of its stage (``resources:`` in the study
file). On Slurm every job is submitted at once, each with ``--dependency=afterok:`` on the jobs of the items it
needs (and ``--kill-on-invalid-dep=yes``, so a failure cancels what depends on it); submitit's local executor
(``cluster="local"``: each job a process on this machine) has no dependencies, so the jobs are submitted as
their inputs complete. Either way a resubmission after a failure, a timeout or a change to the study runs only
the unfinished items.
"""

from __future__ import annotations

import json
import re
import shutil
import sys
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._atomic import atomic_write_text
from ..errors import QRProbeInputError, require
from ..progress import console_output
from .cache import slug
from .config import StudyConfig
from .items import StageItem, finished_items, run_item, study_items
from .runner import expand_force

CLUSTERS = ("slurm", "local")


@dataclass
class Submission:
    """What a submission did: the jobs (item → job id), the items left out because they were finished, and,
    when it waited for the jobs, which completed, which failed (with the error) and which were not run because
    an item they need failed; ``log`` gathers the completed jobs' log entries."""

    jobs: dict[StageItem, str] = field(default_factory=dict)
    finished_before: list[StageItem] = field(default_factory=list)
    completed: list[StageItem] = field(default_factory=list)
    failed: dict[StageItem, str] = field(default_factory=dict)
    blocked: list[StageItem] = field(default_factory=list)
    log: list[dict] = field(default_factory=list)


def job_parameters(study: StudyConfig, item: StageItem, after: Collection[str] = ()) -> dict:
    """submitit ``update_parameters`` keywords for ``item``'s job: its stage's resources, a job name, and
    ``--dependency=afterok:`` on the job ids ``after``."""
    res = getattr(study.resources, item.stage)
    extra = {str(k): v for k, v in res.slurm.items()}
    if after:
        extra["dependency"] = "afterok:" + ":".join(after)
        extra["kill-on-invalid-dep"] = "yes"
    params = {"name": f"qrprobe-{slug(study.name)}-{slug(item.label)}", "timeout_min": res.timeout_min,
              "mem_gb": res.mem_gb, "cpus_per_task": res.cpus, "gpus_per_node": res.gpus, "tasks_per_node": 1,
              "nodes": 1, "slurm_additional_parameters": extra}
    if res.partition:
        params["slurm_partition"] = res.partition
    return params


def check_cluster(cluster: str) -> None:
    """Raise :class:`QRProbeInputError` when ``cluster`` is ``"slurm"`` and this host has no Slurm commands
    (``sbatch`` submits the jobs, submitit looks for ``srun``): one line, before any folder is created."""
    if cluster != "slurm":
        return
    missing = [name for name in ("sbatch", "srun") if shutil.which(name) is None]
    if missing:
        raise QRProbeInputError(f"--executor slurm: this host has no Slurm ({' and '.join(missing)} not on PATH); "
                                "run on a Slurm login node, or add --cluster local to run each job as a process "
                                "here (to try a study's jobs), or use --executor local")


def run_job(study: StudyConfig, output: str, item: StageItem, *, force: tuple[str, ...] = ()) -> list[dict]:
    """One Slurm job: :func:`~.items.run_item` with its warnings on the job's stderr (its log), as the CLI
    prints them, rather than on the library's silent logger."""
    with console_output():
        return run_item(study, output, item, force=force)


def submit_study(study: StudyConfig, output: str | Path, *, cluster: str = "slurm", folder: str | Path | None = None,
                 force: Collection[str] = (), wait: bool = True, poll_s: float | None = None,
                 echo: Callable[[str], None] | None = None) -> Submission:
    """Submit the unfinished items of ``study`` as jobs; with ``wait``, follow them until all have ended.

    Parameters
    ----------
    output : the study's output folder (the stage directories; shared by every node).
    cluster : ``"slurm"`` (sbatch, scheduler-side dependencies) or ``"local"`` (submitit's local executor: each
        job a process on this machine, submitted when its inputs are complete).
    folder : submitit's folder (pickled jobs, logs); default ``OUTPUT/jobs``.
    force : stages to recompute even where finished.
    wait : follow the jobs to the end (always, with the local executor).
    poll_s : seconds between status checks (default 1 locally, 30 on Slurm).
    """
    submitit = require("submitit", "slurm", "the Slurm executor")
    if cluster not in CLUSTERS:
        raise QRProbeInputError(f"cluster: expected one of {', '.join(CLUSTERS)}, got {cluster!r}")
    check_cluster(cluster)
    echo = echo or (lambda text: print(text, file=sys.stderr, flush=True))
    out = Path(output).resolve()
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "study.resolved.json", json.dumps(study.to_dict(), indent=2, default=str))
    graph = study_items(study)
    force = expand_force(force)
    finished = finished_items(study, out, force)
    result = Submission(finished_before=[item for item, _ in graph if item in finished])
    pending = {item: [d for d in deps if d not in finished] for item, deps in graph if item not in finished}
    if not pending:
        echo("every item of the study is finished; nothing to submit")
        return result
    executor = submitit.AutoExecutor(folder=Path(folder or out / "jobs"), cluster=cluster)
    scheduler_side = cluster == "slurm"
    jobs: dict[StageItem, Any] = {}  # submitit jobs
    running: dict[StageItem, Any] = {}
    while pending or running:
        for item, deps in list(pending.items()):
            if any(d in result.failed or d in result.blocked for d in deps):
                result.blocked.append(item)
                del pending[item]
            elif all(d in jobs for d in deps) if scheduler_side else all(d in result.completed for d in deps):
                executor.update_parameters(**job_parameters(
                    study, item, [jobs[d].job_id for d in deps] if scheduler_side else ()))
                jobs[item] = running[item] = executor.submit(run_job, study, str(out), item, force=tuple(force))
                result.jobs[item] = str(jobs[item].job_id)
                echo(f"[{cluster}] submitted {item.label} as job {jobs[item].job_id}")
                del pending[item]
        if scheduler_side and not wait:
            break
        for item, job in list(running.items()):
            if job.done():
                del running[item]
                _collect(item, job, result, echo)
        if pending or running:
            time.sleep(poll_s if poll_s is not None else (30.0 if scheduler_side else 1.0))
    return result


def _collect(item: StageItem, job, result: Submission, echo: Callable[[str], None]) -> None:
    """Record how ``job`` (of ``item``) ended."""
    error = job.exception()
    if error is None:
        result.completed.append(item)
        entries = job.result()
        result.log.extend(entries)
        own = [e for e in entries if e["stage"] == item.stage]  # not the inputs it reused
        for entry in own:
            done = "reused" if entry["reused"] else f"done in {entry['seconds']:.1f} s"
            echo(f"[{entry['stage']}] {entry['item']}: {done} (job {job.job_id})")
        if not own:
            echo(f"[{item.stage}] {item.label}: done (job {job.job_id})")
    else:
        last = _last_error_line(str(error)) or type(error).__name__
        result.failed[item] = last
        echo(f"[{item.stage}] {item.label}: job {job.job_id} failed: {last} (log: {job.paths.stderr})")


def _last_error_line(text: str) -> str:
    """The exception line of a failed job's message (submitit puts the job's traceback between lines of
    dashes, then the paths of its logs)."""
    parts = re.split(r"\n-{10,}\n", text)
    trace = parts[1] if len(parts) >= 3 else text
    lines = [line.strip() for line in trace.strip().splitlines() if line.strip()]
    return lines[-1] if lines else ""


__all__ = ["CLUSTERS", "Submission", "job_parameters", "submit_study"]
