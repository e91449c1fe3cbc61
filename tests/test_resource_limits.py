"""Resource limits (issue 23, item 3): a file-size limit (``ulimit -f``: ``EFBIG``, ``SIGXFSZ`` ignored), a
full disk and a memory error end every writer (evaluate, extract, label, report) with one line, exit 2, and
nothing partial left: no temporaries, no ``.NAME.partial`` work folder, a previous output untouched."""

from __future__ import annotations

import errno
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from _hostile import FAST, REPO, evaluate_example, leftovers
from qrprobe._resources import ResourceLimitError, resource_limit_error, resource_problem
from qrprobe.cli.main import main
from qrprobe.synthetic import write_image_folder


def _limited(kib: int, args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    """``qrprobe ARGS`` in a shell whose file-size limit is ``kib`` KiB (``ulimit -f``)."""
    command = " ".join(shlex.quote(a) for a in [sys.executable, "-m", "qrprobe", *args])
    return subprocess.run(["bash", "-c", f"ulimit -f {kib}; exec {command}"], cwd=cwd, capture_output=True,
                          text=True, timeout=300, env={**os.environ, "PYTHONPATH": str(REPO / "src")})


def _snapshot(path: Path) -> dict[str, bytes]:
    if path.is_file():
        return {path.name: path.read_bytes()}
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


def _assert_one_line_limit(proc: subprocess.CompletedProcess, command: str, out: Path, kib: int) -> None:
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if "error" in line]
    assert errors == [f"qrprobe {command}: error: cannot write --out {str(out)!r}: File too large (the file-size "
                      f"limit, `ulimit -f`, is {kib} KiB); nothing was written (a previous output is kept as it "
                      "was)"], proc.stderr


@pytest.fixture
def images(tmp_path) -> Path:
    return write_image_folder(tmp_path / "imgs", {"a": 6, "b": 6})


@pytest.mark.slow  # subprocesses: tens of seconds
@pytest.mark.parametrize("previous", [False, True], ids=["new", "overwrite"])
def test_evaluate_under_a_file_size_limit(previous, write_example, tmp_path):
    example = write_example(tmp_path / "data")
    out = tmp_path / "res"
    if previous:
        evaluate_example(example, out)
    before = _snapshot(out) if previous else None
    proc = _limited(8, ["evaluate", *map(str, example), *FAST, "-o", str(out),
                        *(["--overwrite"] if previous else [])], tmp_path)
    _assert_one_line_limit(proc, "evaluate", out, 8)
    if previous:
        assert _snapshot(out) == before
        assert leftovers(out) == ["res"]
    else:
        assert leftovers(out) == []


@pytest.mark.slow  # subprocesses: tens of seconds
@pytest.mark.parametrize("workers", ["0", "1"], ids=["in-process", "dataloader-worker"])
def test_extract_under_a_file_size_limit_leaves_no_work_folder(workers, images, tmp_path):
    out = tmp_path / "store"
    proc = _limited(20, ["extract", "pixels", str(images), "-o", str(out), "--quiet", "--workers", workers],
                    tmp_path)
    _assert_one_line_limit(proc, "extract", out, 20)
    assert leftovers(out) == []


def test_label_under_a_file_size_limit(images, tmp_path):
    out = tmp_path / "bank"
    proc = _limited(4, ["label", str(images), "--experts", "color,image-stats", "-o", str(out), "--quiet"],
                    tmp_path)
    _assert_one_line_limit(proc, "label", out, 4)
    assert leftovers(out) == []


@pytest.mark.slow  # subprocesses: tens of seconds
def test_report_under_a_file_size_limit_keeps_the_previous_report(write_example, tmp_path):
    result = evaluate_example(write_example(tmp_path / "data"), tmp_path / "res")
    out = tmp_path / "report.html"
    assert main(["report", str(result), "-o", str(out)]) == 0
    before = _snapshot(out)
    proc = _limited(20, ["report", str(result), "-o", str(out), "--overwrite"], tmp_path)
    _assert_one_line_limit(proc, "report", out, 20)
    assert _snapshot(out) == before
    assert leftovers(out) == ["report.html"]


def test_a_memory_error_in_evaluate_is_one_line(write_example, tmp_path, capsys, monkeypatch):
    example = write_example(tmp_path / "data")
    out = tmp_path / "res"

    def no_memory(*args, **kwargs):
        raise MemoryError()

    monkeypatch.setattr("qrprobe.engine.evaluate.evaluate", no_memory)
    assert main(["evaluate", *map(str, example), *FAST, "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.strip() == (f"qrprobe evaluate: error: ran out of memory while making --out {str(out)!r}; nothing "
                           "was written (a previous output is kept as it was)")
    assert leftovers(out) == []


@pytest.mark.parametrize("exc", [MemoryError(), OSError(errno.ENOSPC, "No space left on device")],
                         ids=["memory", "full-disk"])
def test_a_limit_after_a_finished_chunk_leaves_no_work_folder(exc, images, tmp_path, capsys, monkeypatch):
    import qrprobe.features.store as store

    real, calls = store._save_npy, []

    def second_fails(*args, **kwargs):
        calls.append(1)
        if len(calls) > 1:
            raise exc
        return real(*args, **kwargs)

    monkeypatch.setattr(store, "_save_npy", second_fails)
    out = tmp_path / "store"
    assert main(["extract", "pixels-4", str(images), "-o", str(out), "--quiet", "--workers", "0",
                 "--chunk-size", "4"]) == 2
    err = capsys.readouterr().err
    assert len(calls) == 2, err  # one chunk was committed to the work folder before the limit was hit
    assert "Traceback" not in err
    assert f"--out {str(out)!r}" in err
    assert leftovers(out) == []


@pytest.mark.parametrize(("exc", "words"), [
    (OSError(errno.EFBIG, "File too large"), "File too large"),
    (OSError(errno.ENOSPC, "No space left on device"), "No space left on device"),
    (OSError(errno.EDQUOT, "Disk quota exceeded"), os.strerror(errno.EDQUOT)),
    (OSError("9216 requested and 5088 written"), "written"),  # numpy's short write, no errno
    (RuntimeError("unable to resize file </torch_1_2_0> to the right size: File too large (27)"), "File too large"),
    (RuntimeError("DataLoader worker (pid 7) exited: No space left on device"), "No space left on device"),
    (MemoryError(), "out of memory"),
    (RuntimeError("[enforce fail at alloc_cpu.cpp:83] DefaultCPUAllocator: can't allocate memory"), "out of memory"),
])
def test_every_shape_of_a_resource_limit_is_recognised(exc, words):
    assert words.lower() in (resource_problem(exc) or "").lower() or (
        words == "written" and resource_problem(exc) is not None)
    wrapped = RuntimeError("a caught and re-raised error")
    wrapped.__cause__ = exc
    assert resource_problem(wrapped) == resource_problem(exc)
    error = resource_limit_error(wrapped, "out", "--out")
    assert isinstance(error, ResourceLimitError)
    assert "--out 'out'" in str(error)


@pytest.mark.parametrize("exc", [RuntimeError("boom"), OSError(errno.ENOENT, "No such file"), ValueError("x")])
def test_other_errors_are_not_resource_limits(exc):
    assert resource_problem(exc) is None
    assert resource_limit_error(exc, "out") is None


def test_a_limit_outside_any_output_is_one_line_too(capsys, monkeypatch):
    def no_memory(args):
        raise MemoryError()

    monkeypatch.setattr("qrprobe.cli.models.run", no_memory)
    assert main(["models"]) == 2
    assert capsys.readouterr().err.strip() == "qrprobe models: error: stopped by a resource limit: out of memory"
