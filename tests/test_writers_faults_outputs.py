"""The writers of results, analyses, reports and examples under faults (issue 11, class 8).

The same promises as ``test_writers_faults`` (whose helpers this reuses) for the remaining writers: after a
full disk, a read-only output or a kill during the save, the previous good output is intact, the failure is
one error naming the output, and a rerun leaves no temporary file behind.
"""

from __future__ import annotations

import contextlib
import errno
import importlib
import io
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from _hostile import REPO, kill_once_ready
from qrprobe.cli.main import main
from qrprobe.errors import QRProbeInputError
from qrprobe.report.html import write_html
from qrprobe.report.section import Block, Section
from qrprobe.report.tables import Table
from qrprobe.results import Result
from test_writers_faults import _debris, _partial_write_then, _snapshot


def _result(seed: int) -> Result:
    rng = np.random.default_rng(seed)
    per = [{"clustering": 0, "seed": seed, "k": 3, "nmi": float(rng.random())}]
    return Result(summary={"nmi": {"mean": per[0]["nmi"], "std": 0.0, "values": [per[0]["nmi"]]}},
                  per_clustering=per, config={"k": 3}, seeds=[seed],
                  clusterings=rng.integers(0, 3, (1, 10)).astype(np.int32),
                  centroids=rng.normal(size=(1, 3, 2)).astype(np.float32))


def _section(seed: int) -> Section:
    table = Table(f"t{seed}", pd.DataFrame({"a": [seed, seed + 1]}), f"Table {seed}")
    return Section("notes", f"Section {seed}", blocks=[Block(f"block {seed}", tables=[table])])


def _example(out: Path, n: int, overwrite: bool = False) -> None:
    """``qrprobe example`` (a CLI-only writer); its one-line error is raised again."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = main(["example", "--n", str(n), "-o", str(out), *(["--overwrite"] if overwrite else [])])
    if code != 0:
        assert code == 2
        assert "Traceback" not in err.getvalue()
        raise QRProbeInputError(err.getvalue().strip())


def _report(out: Path, seed: int) -> None:
    write_html([_section(seed)], out, title=f"report {seed}")


# writer -> (write the previous good output, write the new one); both take the output path
WRITERS = {
    "result": (lambda out: _result(1).save(out), lambda out: _result(2).save(out, overwrite=True)),
    "section": (lambda out: _section(1).save(out), lambda out: _section(2).save(out, overwrite=True)),
    "report": (lambda out: _report(out, 1), lambda out: _report(out, 2)),
    "example": (lambda out: _example(out, 30), lambda out: _example(out, 40, overwrite=True)),
}
# writer -> the function each writes its files through (replaced by a failing one in the tests)
WRITE_FUNCTIONS = {"result": "numpy.save", "section": "pathlib.Path.write_text",
                   "report": "pathlib.Path.write_text", "example": "numpy.save"}


def _state(out: Path) -> dict[str, bytes]:
    return {"": out.read_bytes()} if out.is_file() else _snapshot(out)


def _patch(monkeypatch, writer: str, replacement) -> None:
    target, _, name = WRITE_FUNCTIONS[writer].rpartition(".")
    module, _, cls = target.rpartition(".") if target.startswith("pathlib.") else (target, "", "")
    owner = getattr(importlib.import_module(module), cls) if cls else importlib.import_module(module)
    monkeypatch.setattr(owner, name, replacement)


@pytest.mark.parametrize("writer", list(WRITERS))
@pytest.mark.parametrize(("code", "message"), [(errno.ENOSPC, "No space left on device"),
                                          (errno.EROFS, "Read-only file system")])
def test_a_failing_disk_keeps_the_previous_output_and_a_rerun_cleans_up(writer, code, message, tmp_path,
                                                                        monkeypatch):
    before, write = WRITERS[writer]
    out = tmp_path / ("out.html" if writer == "report" else "out")
    before(out)
    previous = _state(out)
    _patch(monkeypatch, writer, _partial_write_then(OSError(code, message)))
    with pytest.raises(QRProbeInputError, match=rf"cannot write .*out.*{message}"):
        write(out)
    assert _state(out) == previous
    assert _debris(tmp_path) == []
    monkeypatch.undo()
    write(out)
    assert _state(out) != previous
    assert _debris(tmp_path) == []


_KILL = textwrap.dedent("""
    import importlib, os, sys, time
    from pathlib import Path
    sys.path.insert(0, {tests!r})
    import test_writers_faults_outputs as t

    calls = []
    target = t.WRITE_FUNCTIONS[{writer!r}]
    module = importlib.import_module(target.rpartition(".")[0].rpartition(".")[0] if "pathlib." in target
                                     else target.rpartition(".")[0])
    owner = getattr(module, "Path") if "pathlib." in target else module
    name = target.rpartition(".")[2]
    real = getattr(owner, name)

    def stalled(target, *args, **kwargs):
        calls.append(1)
        path = target if isinstance(target, (str, os.PathLike)) else target.name  # a path, or an open file
        with open(path, "ab") as f:
            f.write(b"half a file")
        Path({ready!r}).touch()
        time.sleep(600)

    setattr(owner, name, stalled)
    t.WRITERS[{writer!r}][1](Path({out!r}))
""")


@pytest.mark.slow
@pytest.mark.parametrize("writer", list(WRITERS))
def test_a_kill_during_save_keeps_the_previous_output_and_a_rerun_cleans_up(writer, tmp_path):
    before, write = WRITERS[writer]
    out = tmp_path / ("out.html" if writer == "report" else "out")
    before(out)
    previous = _state(out)
    ready = tmp_path / "ready"
    (tmp_path / "elsewhere").mkdir()  # the working directory of the killed process: nothing may land there
    script = _KILL.format(tests=str(REPO / "tests"), writer=writer, ready=str(ready), out=str(out))
    kill_once_ready(script, ready, cwd=tmp_path / "elsewhere")
    assert _state(out) == previous
    assert any(".tmp-" in p for p in _debris(tmp_path)), "the kill left nothing to clean up"
    write(out)
    assert _state(out) != previous
    assert _debris(tmp_path) == []
    assert list((tmp_path / "elsewhere").iterdir()) == []
