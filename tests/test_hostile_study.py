"""Studies under attack (issue 11, classes 4, 7 and 8 for study folders).

The whole study is checked before any work; its output is never an input, never inside an image folder and
never a folder of other files; one run at a time uses an output (a lock that a killed run does not leave
held); YAML alias expansion is bounded; a re-run removes what a killed run left behind.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
import tracemalloc

import pytest

from _hostile import REPO, assert_input_error
from qrprobe.cli.main import main
from qrprobe.errors import QRProbeInputError
from qrprobe.study.lock import study_lock
from qrprobe.study.yamlsrc import MAX_VALUES, load_located
from qrprobe.synthetic import write_image_folder

STUDY = """\
name: tiny
images: {{source: {images}}}
models: [{{name: px, model: pixels-4}}]
experts: [{{name: color}}]
protocol: {{k: 2, clusterings: 1, iters: 5, restarts: 1, probe: {{epochs: 2}}}}
report: {{enabled: false}}
"""


@pytest.fixture
def study(tmp_path):
    images = write_image_folder(tmp_path / "imgs", {"a": 15, "b": 15})
    path = tmp_path / "study.yaml"
    path.write_text(STUDY.format(images=images))
    return path


def _variant(study, old: str, new: str):
    path = study.with_name("variant.yaml")
    path.write_text(study.read_text().replace(old, new))
    return path


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


# ---------------------------------------------------------------------------------------------- class 4
@pytest.mark.parametrize(("old", "new", "named"), [
    ("k: 2", "k: -3", "protocol.k"),
    ("name: color", "name: nosuch", "unknown expert 'nosuch'"),
    ("{name: color}", "{name: color, options: {shade: 3}}", "has no option 'shade'"),
    ("model: pixels-4", "model: nosuchmodel", "models[0].model"),
])
def test_the_whole_study_is_checked_before_any_work(study, tmp_path, capsys, old, new, named):
    out = tmp_path / "out"
    err = assert_input_error(capsys, ["run", str(_variant(study, old, new)), "-o", str(out)], named, out=out)
    assert "variant.yaml:" in err  # file:line:column of the offending key


def test_an_output_inside_the_image_folder_is_refused(study, tmp_path, capsys):
    images = tmp_path / "imgs"
    assert_input_error(capsys, ["run", str(study), "-o", str(images / "out")], "inside the image folder",
                       out=images / "out")
    assert sorted(p.name for p in images.iterdir()) == ["a", "b"]


def test_the_image_folder_is_refused_as_output(study, tmp_path, capsys):
    images = tmp_path / "imgs"
    assert_input_error(capsys, ["run", str(study), "-o", str(images)], "is the input images.source")
    assert sorted(p.name for p in images.iterdir()) == ["a", "b"]


def test_a_folder_of_other_files_is_not_a_study_output(study, tmp_path, capsys):
    mine = tmp_path / "mine"
    (mine / "report").mkdir(parents=True)
    (mine / "report" / "draft.txt").write_text("my report")
    assert_input_error(capsys, ["run", str(study), "-o", str(mine)], "no study wrote it")
    assert (mine / "report" / "draft.txt").read_text() == "my report"


def test_a_second_run_on_the_same_output_is_refused_while_the_first_holds_it(study, tmp_path, capsys):
    out = tmp_path / "out"
    with study_lock(out):
        err = assert_input_error(capsys, ["run", str(study), "-o", str(out)], f"(pid {os.getpid()}, started",
                                 "is using")
    assert "wait for it to finish" in err


_HOLD = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from qrprobe.study.lock import study_lock
    with study_lock(sys.argv[1]):
        Path(sys.argv[2]).touch()
        time.sleep(600)
""")


def test_a_killed_run_leaves_no_lock_that_blocks_and_its_debris_is_removed(study, tmp_path, capsys):
    # one sequence: the run after the kill must find the killed run's lock and debris
    out, ready = tmp_path / "out", tmp_path / "ready"
    holder = subprocess.Popen([sys.executable, "-c", _HOLD, str(out), str(ready)],
                              env={**os.environ, "PYTHONPATH": str(REPO / "src")})
    deadline = time.time() + 120
    while not ready.exists() and holder.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    assert ready.exists()
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    (out / "study.resolved.json").write_text("{}")  # the killed run had started writing
    dead = _dead_pid()
    folders = [out / "results" / f".px-0123.tmp-{dead}-0123abcd", out / "analyses" / f".x.tmp-{dead}-4567cdef",
               out / "concepts" / "..pass-0a1b2c.partial", out / "features" / ".gone-model-abc.partial"]
    for path in folders:  # what a killed run leaves: temporaries of its writers, work folders of old items
        (path / "sub").mkdir(parents=True)
        (path / "sub" / "half.npy").write_bytes(b"half")
    debris = [*folders, out / f".ranking.md.tmp-{dead}-89abcdef"]
    debris[-1].write_text("half")
    assert main(["run", str(study), "-o", str(out), "--quiet"]) == 0, capsys.readouterr().err
    assert [p for p in debris if p.exists()] == []
    assert (out / "ranking.md").is_file()


def test_a_run_while_another_holds_the_study_is_refused(study, tmp_path):
    # deterministic: the holder has the study's lock before the run starts
    out, ready = tmp_path / "out", tmp_path / "ready"
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    holder = subprocess.Popen([sys.executable, "-c", _HOLD, str(out), str(ready)], env=env)
    try:
        deadline = time.time() + 120
        while not ready.exists() and holder.poll() is None and time.time() < deadline:
            time.sleep(0.05)
        assert ready.exists()
        run = subprocess.run([sys.executable, "-m", "qrprobe", "run", str(study), "-o", str(out), "--quiet"],
                             env=env, capture_output=True, text=True, timeout=600)
    finally:
        holder.kill()
        holder.wait()
    assert run.returncode == 2, run.stderr
    assert f"another qrprobe run (pid {holder.pid}, started" in run.stderr
    assert "Traceback" not in run.stderr


@pytest.mark.slow
def test_two_runs_started_together(study, tmp_path):
    # the two runs must overlap in time. Both are processes started at once, so both reach the study's lock after
    # the same imports, within a few tens of ms of each other, while the tiny study holds it for about 0.45 s; on a
    # loaded machine one run's imports can still finish that much later (once in a CI run: both exited 0, one
    # after the other), so a pair that did not overlap is started again, up to three pairs. A lock that let
    # overlapping runs through fails every pair.
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    for attempt in range(3):
        out = tmp_path / f"out{attempt}"
        command = [sys.executable, "-m", "qrprobe", "run", str(study), "-o", str(out), "--quiet"]
        runs = [subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                for _ in range(2)]
        errors = [run.communicate(timeout=600)[1] for run in runs]
        codes = [run.returncode for run in runs]
        assert "Traceback" not in "".join(errors)
        if sorted(codes) != [0, 0]:
            break
    assert sorted(codes) == [0, 2], errors
    refused = errors[codes.index(2)]
    assert "another qrprobe run (pid" in refused


# ---------------------------------------------------------------------------------------------- class 7
def test_yaml_alias_expansion_is_bounded(tmp_path, capsys):
    lines = ['a: &a ["x","x","x","x","x","x","x","x","x"]']
    for prev, name in zip("abcdef", "bcdefg", strict=True):  # 9**7 ≈ 4.8 million strings from 9 lines
        lines.append(f"{name}: &{name} [" + ",".join([f"*{prev}"] * 9) + "]")
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text("\n".join(lines) + "\n")
    assert bomb.stat().st_size < 700
    tracemalloc.start()
    with pytest.raises(QRProbeInputError, match=f"more than {MAX_VALUES:,} values"):
        load_located(bomb)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 200 * 2**20, f"{peak / 2**20:.0f} MiB"
    assert_input_error(capsys, ["run", str(bomb)], "bomb.yaml:", "aliases")


@pytest.mark.parametrize(("text", "named"), [
    ("name: &x [*x]\n", "recursive alias"),
    ("a: &x\n  b: *x\n", "recursive alias"),
    ("name: !!python/object:os.system ls\n", "python/object"),
    ("? [a, b]\n: 3\n", "a key must be a plain name"),
])
def test_hostile_yaml_is_one_error_with_its_location(tmp_path, capsys, text, named):
    path = tmp_path / "s.yaml"
    path.write_text(text)
    assert_input_error(capsys, ["run", str(path)], "s.yaml:", named)


def test_non_utf8_study_file(tmp_path, capsys):
    path = tmp_path / "s.yaml"
    path.write_bytes(b"name: caf\xe9\n")
    assert_input_error(capsys, ["run", str(path)], "s.yaml", "not UTF-8")
