"""The writers under faults (issue 11, class 8): a kill during save, a full disk, a read-only output.

For each writer of this layer (the extraction's chunked FeatureStoreWriter, ``write_feature_store``, the
labelling loop with its chunked work folder, ``ConceptBank.save``) the previous good output stays intact,
a failure is one clear error naming the output, and a rerun leaves no temporary files behind.
"""

from __future__ import annotations

import errno
import importlib
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from _hostile import kill_once_ready
from qrprobe._atomic import clean_stale
from qrprobe.cli.main import main
from qrprobe.concepts.bank import ConceptBank
from qrprobe.errors import QRProbeInputError
from qrprobe.features import FeatureStore, extract, write_feature_store
from qrprobe.synthetic import write_image_folder

REPO = Path(__file__).resolve().parents[1]
RNG = np.random.default_rng(0)
FEATS_OLD, FEATS_NEW = RNG.normal(size=(5, 3)), RNG.normal(size=(5, 3))


def _bank(seed: int) -> ConceptBank:
    matrix = np.random.default_rng(seed).random((6, 4)) < 0.5
    return ConceptBank.from_matrix(matrix, list("abcd"), image_ids=[f"i{k}" for k in range(6)])


def _extract(root: Path, out: Path, dtype: str = "float16"):
    return extract("pixels-4", root, out, workers=0, progress=False, chunk_size=2, dtype=dtype, overwrite=True)


def _label(root: Path, out: Path, experts=("color",)):
    from qrprobe.experts.label import run_labelling

    return run_labelling(root, list(experts), output=out, chunk_size=2, batch_size=2, progress=False,
                         overwrite=True)


# writer name -> (write the previous good output, write the new one); both take (images folder, output)
WRITERS = {
    "extract": (lambda root, out: _extract(root, out, "float32"), lambda root, out: _extract(root, out)),
    "write_feature_store": (lambda root, out: write_feature_store(out, FEATS_OLD),
                            lambda root, out: write_feature_store(out, FEATS_NEW, overwrite=True)),
    "label": (lambda root, out: _label(root, out, ["image-stats"]), lambda root, out: _label(root, out)),
    "bank.save": (lambda root, out: _bank(1).save(out), lambda root, out: _bank(2).save(out, overwrite=True)),
}
# writer name -> (module attribute written through, how the test's fake is called)
WRITE_FUNCTIONS = {
    "extract": "qrprobe.features.store._save_npy",
    "write_feature_store": "numpy.save",
    "label": "qrprobe.experts.label._save_npz",
    "bank.save": "scipy.sparse.save_npz",
}


def _snapshot(path: Path) -> dict[str, bytes]:
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


def _with_previous_output(writer: str, images: Path, tmp_path: Path):
    """Write the writer's previous good output at ``tmp_path/out``: (the new write, out, its snapshot)."""
    before, write = WRITERS[writer]
    out = tmp_path / "out"
    before(images, out)
    return write, out, _snapshot(out)


def _debris(root: Path, *, allow_partial: bool = False) -> list[str]:
    """Hidden leftovers of writers under ``root``: temporary files and folders, moved-aside outputs, work
    folders (unless ``allow_partial``: an interrupted chunked writer keeps its finished chunks to resume)."""
    found = []
    for p in root.rglob(".*"):
        if allow_partial and p.name.endswith(".partial"):
            continue
        if ".tmp-" in p.name or ".old-" in p.name or p.name.endswith(".partial") or p.name.startswith(".chunk-"):
            found.append(str(p.relative_to(root)))
    return found


@pytest.fixture
def images(tmp_path) -> Path:
    return write_image_folder(tmp_path / "imgs", {"a": 3, "b": 2})


def _partial_write_then(exc: BaseException):
    """A replacement write function: writes a few bytes where it was asked to, then raises ``exc``."""
    def fake(target, *args, **kwargs):
        if hasattr(target, "write"):
            target.write(b"partial")
        else:
            Path(str(target)).write_bytes(b"partial")
        raise exc

    return fake


@pytest.mark.parametrize("writer", list(WRITERS))
def test_a_full_disk_keeps_the_previous_output_and_a_rerun_cleans_up(writer, images, tmp_path, monkeypatch):
    write, out, previous = _with_previous_output(writer, images, tmp_path)
    module, _, name = WRITE_FUNCTIONS[writer].rpartition(".")
    monkeypatch.setattr(importlib.import_module(module), name,
                        _partial_write_then(OSError(errno.ENOSPC, "No space left on device")))
    with pytest.raises(QRProbeInputError, match=r"cannot write .*out.*No space left on device"):
        write(images, out)
    assert _snapshot(out) == previous
    assert _debris(tmp_path, allow_partial=True) == []
    monkeypatch.undo()
    write(images, out)
    assert _snapshot(out) != previous
    assert _debris(tmp_path) == []


@pytest.mark.parametrize("writer", list(WRITERS))
def test_a_read_only_output_is_a_clear_error(writer, images, tmp_path, monkeypatch):
    write, out, previous = _with_previous_output(writer, images, tmp_path)
    real_mkdir = Path.mkdir

    def read_only_mkdir(self, *args, **kwargs):
        if self.parent == tmp_path:  # the output's folder is on a read-only file system
            raise OSError(errno.EROFS, "Read-only file system", str(self))
        return real_mkdir(self, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", read_only_mkdir)
    with pytest.raises(QRProbeInputError, match=r"cannot write .*Read-only file system"):
        write(images, out)
    assert _snapshot(out) == previous
    assert _debris(tmp_path) == []


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_an_unwritable_folder_through_the_cli(images, tmp_path, capsys):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        assert main(["extract", "pixels-4", str(images), "-o", str(locked / "f"), "--no-progress",
                     "--workers", "0"]) == 2
    finally:
        locked.chmod(0o755)
    err = capsys.readouterr().err
    assert "Permission denied" in err
    assert "Traceback" not in err
    assert list(locked.iterdir()) == []


def test_a_full_disk_through_the_cli(images, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("qrprobe.features.store._save_npy",
                        _partial_write_then(OSError(errno.ENOSPC, "No space left on device")))
    out = tmp_path / "f"
    assert main(["extract", "pixels-4", str(images), "-o", str(out), "--no-progress", "--workers", "0"]) == 2
    err = capsys.readouterr().err
    assert "No space left on device" in err
    assert str(out) in err
    assert "Traceback" not in err
    assert not out.exists()
    assert _debris(tmp_path, allow_partial=True) == []


def test_a_run_killed_between_the_two_renames_gets_its_previous_output_back(tmp_path):
    out = tmp_path / "store"
    write_feature_store(out, FEATS_OLD)
    previous = _snapshot(out)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    out.rename(tmp_path / f".store.old-{dead.pid}-0123abcd")  # moved aside; the new one never arrived
    (tmp_path / f".store.tmp-{dead.pid}-4567cdef").mkdir()
    clean_stale(out)
    assert _snapshot(out) == previous
    assert _debris(tmp_path) == []


_KILL_SCRIPT = textwrap.dedent("""
    import importlib, sys, time
    from pathlib import Path
    sys.path.insert(0, {tests!r})
    import test_writers_faults as t

    module, _, name = t.WRITE_FUNCTIONS[{writer!r}].rpartition(".")
    module = importlib.import_module(module)
    real = getattr(module, name)
    calls = []

    def stalled(target, *args, **kwargs):
        calls.append(1)
        if len(calls) < {stall_at}:
            return real(target, *args, **kwargs)
        with open(str(target) if not hasattr(target, "write") else target.name, "ab") as f:
            f.write(b"half a file")
        Path({ready!r}).touch()
        time.sleep(600)

    setattr(module, name, stalled)
    t.WRITERS[{writer!r}][1](Path({images!r}), Path({out!r}))
""")


@pytest.mark.slow
@pytest.mark.parametrize("writer", list(WRITERS))
def test_a_kill_during_save_keeps_the_previous_output_and_a_rerun_cleans_up(writer, images, tmp_path):
    write, out, previous = _with_previous_output(writer, images, tmp_path)
    ready = tmp_path / "ready"
    stall_at = 2 if writer in ("extract", "label") else 1  # the chunked writers: after one finished chunk
    script = _KILL_SCRIPT.format(tests=str(REPO / "tests"), writer=writer, stall_at=stall_at, ready=str(ready),
                                 images=str(images), out=str(out))
    kill_once_ready(script, ready)
    assert _snapshot(out) == previous
    assert any(".tmp-" in p for p in _debris(tmp_path)), "the kill left nothing to clean up"
    write(images, out)
    assert _snapshot(out) != previous
    assert _debris(tmp_path) == []
    if writer == "extract":  # resumed after the finished chunk to the same store as an uninterrupted run
        reference = _extract(images, tmp_path / "ref")
        np.testing.assert_array_equal(FeatureStore.open(out).load(), reference.load())
        assert json.loads((out / "manifest.json").read_text())["content_hash"] == reference.manifest["content_hash"]


def test_sp_is_the_module_the_bank_writes_through():
    """The fault tests patch ``scipy.sparse.save_npz``; make sure that is what ConceptBank.save calls."""
    import qrprobe.concepts.bank as bank

    assert bank.sp is sp


def test_temporary_files_of_a_live_writer_are_left_alone(tmp_path):
    live = tmp_path / f".store.tmp-{os.getpid()}-89abcdef"
    live.mkdir()
    clean_stale(tmp_path / "store")
    assert live.is_dir()
