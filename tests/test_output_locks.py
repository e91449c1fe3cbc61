"""One run per output (issue 23, item 2): every command and library writer holds its output's lock
(``.NAME.lock``, ``qrprobe._lock.output_lock``) from before any work to any exit; a second run is refused at
once naming the first (pid, start time), exit 2, with or without ``--overwrite``."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from _hostile import FAST, REPO, cli, evaluate_example, leftovers
from qrprobe._lock import lock_path, output_lock
from qrprobe.cli.main import main
from qrprobe.errors import QRProbeInputError

ENV = {**os.environ, "PYTHONPATH": str(REPO / "src")}

# A first run of `qrprobe evaluate` that stops after taking its lock, once its inputs are read, until the file
# GO exists (so that a second run surely starts while the first holds the output).
_FIRST = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    import qrprobe.cli.evaluate as ev
    from qrprobe.cli.main import main

    ready, go = Path(sys.argv[1]), Path(sys.argv[2])
    real = ev.load_inputs

    def held(args):
        ready.touch()
        deadline = time.time() + 300
        while not go.exists() and time.time() < deadline:
            time.sleep(0.05)
        return real(args)

    ev.load_inputs = held
    sys.exit(main(sys.argv[3:]))
""")

# A process that holds the locks of the outputs given on its command line until it is killed.
_HOLD = textwrap.dedent("""
    import contextlib, sys, time
    from pathlib import Path
    from qrprobe._lock import output_lock
    with contextlib.ExitStack() as stack:
        for out in sys.argv[2:]:
            stack.enter_context(output_lock(out))
        Path(sys.argv[1]).touch()
        time.sleep(600)
""")


def _wait_for(path: Path, proc: subprocess.Popen, seconds: float = 180.0) -> None:
    deadline = time.time() + seconds
    while not path.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    if not path.exists():
        proc.kill()
        raise AssertionError(f"the first run never got ready: {proc.communicate()[1][-2000:]}")


def _start_first(example, out: Path, tmp_path: Path, *extra: str) -> tuple[subprocess.Popen, Path]:
    ready, go = tmp_path / "ready", tmp_path / "go"
    features, concepts = example
    first = subprocess.Popen([sys.executable, "-c", _FIRST, str(ready), str(go), "evaluate", str(features),
                              str(concepts), *FAST, "-o", str(out), *extra],
                             env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _wait_for(ready, first)
    return first, go


@pytest.mark.slow  # subprocesses: tens of seconds
@pytest.mark.parametrize("overwrite", [False, True], ids=["new-output", "overwrite"])
def test_two_concurrent_evaluates_on_one_output_one_runs_the_other_is_refused_at_once(
        overwrite, write_example, tmp_path):
    example = write_example(tmp_path / "data")
    out = tmp_path / "res"
    extra = ["--overwrite"] if overwrite else []
    if overwrite:  # a previous result that both runs would replace
        evaluate_example(example, out)
    first, _ = _start_first(example, out, tmp_path, "--name", "first", *extra)
    try:
        started = time.time()
        second = cli(["evaluate", *map(str, example), *FAST, "-o", str(out), "--name", "second", *extra],
                     timeout=120)
        refused_after = time.time() - started
        assert first.poll() is None, "the first run must still hold the output while the second is refused"
    finally:
        (tmp_path / "go").touch()
    _, first_err = first.communicate(timeout=300)
    assert first.returncode == 0, first_err
    assert second.returncode == 2, second.stderr
    lines = [line for line in second.stderr.splitlines() if line.strip()]
    assert lines == [f"qrprobe evaluate: error: --out {str(out)!r}: another qrprobe run (pid {first.pid}, "
                     f"started {lines[0].split('started ')[1].split(')')[0]}) is using it; wait for it to finish, "
                     "or choose another --out"], second.stderr
    assert "Traceback" not in second.stderr + first_err
    assert refused_after < 60  # at once: the time to start Python, not that of an evaluation
    assert f"results: {out / 'results.json'}" in first_err
    assert "results:" not in second.stderr
    assert '"name": "first"' in (out / "results.json").read_text()  # the one that ran is the one kept
    assert leftovers(out) == ["res"]  # no lock file, no temporaries


def test_the_lock_names_its_holder_and_is_removed_on_release(tmp_path):
    out = tmp_path / "res"
    with output_lock(out):
        pid, started = lock_path(out).read_text().split()
        assert int(pid) == os.getpid()
        assert started[:4].isdigit()
        with output_lock(out):  # re-entrant in one process: a command and the library writers it calls
            pass
        assert lock_path(out).exists()
    assert leftovers(out) == []


def test_the_lock_is_released_on_an_exception_and_created_folders_are_removed(tmp_path):
    out = tmp_path / "a" / "b" / "res"

    def fail() -> None:
        with output_lock(out):
            assert lock_path(out).exists()
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        fail()
    assert list(tmp_path.iterdir()) == []
    with output_lock(out):  # free again
        pass


def test_a_stale_lock_of_a_dead_run_is_taken_over(write_example, tmp_path):
    example = write_example(tmp_path / "data")
    out = tmp_path / "res"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    lock_path(out).write_text(f"{dead.pid} 2026-01-01T00:00:00+00:00\n")  # what a SIGKILLed run leaves
    evaluate_example(example, out)
    assert (out / "results.json").is_file()
    assert leftovers(out) == ["res"]


def _held_by_another_process(tmp_path: Path, outputs: list[Path]) -> subprocess.Popen:
    ready = tmp_path / "held"
    holder = subprocess.Popen([sys.executable, "-c", _HOLD, str(ready), *map(str, outputs)], env=ENV,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _wait_for(ready, holder)
    return holder


def test_every_command_that_writes_an_output_is_refused_while_another_run_holds_it(
        write_example, tmp_path, capsys):
    example = write_example(tmp_path / "data")
    result = evaluate_example(example, tmp_path / "r1")
    images = REPO / "src" / "qrprobe" / "data" / "demo"
    commands = {
        "extract": ["extract", "pixels-4", str(images), "--workers", "0", "--quiet"],
        "label": ["label", str(images), "--experts", "color", "--quiet"],
        "evaluate": ["evaluate", *map(str, example), *FAST],
        "ksweep": ["ksweep", *map(str, example), *FAST],
        "compare": ["compare", str(result)],
        "report": ["report", str(result)],
        "example": ["example"],
    }
    outs = {name: tmp_path / f"out-{name}" for name in commands}
    outs["report"] = tmp_path / "report.html"
    holder = _held_by_another_process(tmp_path, list(outs.values()))
    try:
        for name, args in commands.items():
            started = time.time()
            code = main([*args, "-o", str(outs[name])])
            err = capsys.readouterr().err
            assert code == 2, (name, err)
            assert f"another qrprobe run (pid {holder.pid}, started" in err, (name, err)
            assert "Traceback" not in err
            assert time.time() - started < 30, name  # refused before any work
            assert not outs[name].exists(), name
    finally:
        holder.kill()
        holder.wait()


def test_the_library_writers_are_refused_too(write_example, tmp_path):
    from qrprobe.concepts.bank import ConceptBank
    from qrprobe.features import extract, write_feature_store
    from qrprobe.report.build import build_report
    from qrprobe.results import Result

    example = write_example(tmp_path / "data")
    result_dir = evaluate_example(example, tmp_path / "r1")
    images = REPO / "src" / "qrprobe" / "data" / "demo"
    out = tmp_path / "out"
    writers = {
        "Result.save": lambda: Result.load(result_dir).save(out),
        "ConceptBank.save": lambda: ConceptBank.load(example[1]).save(out),
        "write_feature_store": lambda: write_feature_store(out, __import__("numpy").zeros((2, 3))),
        "extract": lambda: extract("pixels-4", images, out, workers=0, progress=False),
        "build_report": lambda: build_report([result_dir], out),
    }
    holder = _held_by_another_process(tmp_path, [out])
    try:
        for name, write in writers.items():
            with pytest.raises(QRProbeInputError, match=rf"another qrprobe run \(pid {holder.pid}, started"):
                write()
            assert not out.exists(), name
    finally:
        holder.kill()
        holder.wait()


@pytest.mark.slow  # subprocesses: tens of seconds
def test_sigterm_releases_the_lock_and_removes_temporaries(write_example, tmp_path):
    example = write_example(tmp_path / "data")
    out = tmp_path / "res"
    first, _ = _start_first(example, out, tmp_path)
    assert lock_path(out).exists()
    first.send_signal(signal.SIGTERM)
    _, err = first.communicate(timeout=120)
    assert first.returncode == 143, err
    assert "qrprobe evaluate: terminated" in err
    assert "Traceback" not in err
    assert leftovers(out) == []
    evaluate_example(example, out)  # the next run is not blocked


def test_an_existing_output_names_the_flag_with_its_dashes(write_example, tmp_path, capsys):
    example = write_example(tmp_path / "data")
    out = evaluate_example(example, tmp_path / "res")
    assert main(["evaluate", *map(str, example), *FAST, "-o", str(out)]) == 2
    assert "(pass --overwrite to replace it)" in capsys.readouterr().err
    from qrprobe.results import Result

    with pytest.raises(QRProbeInputError, match=r"\(pass overwrite=True to replace it\)"):
        Result.load(out).save(out)


def test_one_output_named_through_a_symbolic_link_to_its_folder_shares_the_lock(tmp_path):
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    holder = _held_by_another_process(tmp_path, [tmp_path / "real" / "res"])
    try:
        with pytest.raises(QRProbeInputError, match=rf"pid {holder.pid}"), output_lock(tmp_path / "link" / "res"):
            pass
    finally:
        holder.kill()
        holder.wait()
