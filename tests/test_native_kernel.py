"""A cached compiled kernel cannot take the process down (issue 23 item 1; ``qrprobe._native``).

Damaged files are planted at the cached path of the K-means kernel: a truncated copy (``head -c 4000``; loading
it in-process ends with a bus error), another valid library (no ``qr_abi_version``), and a library of another
ABI version, each with and without a forged build record (so that both the hash check and the child-process
check are exercised). ``evaluate`` must then finish on the portable path with the same clusterings as a clean
run and one warning, and the next run must rebuild a valid file. None of this needs AVX-512 BF16: the checks
load the file and call the ABI function only.

The rebuilds use a stand-in "compiler" that writes the known-good library (one real compile is shared by the
module, and one test rebuilds for real: slow).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

from qrprobe import _native
from qrprobe.engine.evaluate import evaluate
from qrprobe.engine.kmeans import kernel as kmeans_kernel
from qrprobe.synthetic import make_concept_clusters

pytestmark = pytest.mark.skipif(_native.compiler() is None or sys.platform != "linux" or
                                os.uname().machine != "x86_64", reason="needs a C compiler on x86-64 Linux")

PARAMS = dict(k=8, clusterings=2, kmeans_precision="bfloat16", epochs=2, null_repeats=0)


@pytest.fixture(scope="module")
def good(tmp_path_factory) -> Path:
    """A clean build of the kernel (in its own cache), kept aside as the known-good library."""
    cache = tmp_path_factory.mktemp("cache")
    old = os.environ.get("QRPROBE_CACHE")
    os.environ["QRPROBE_CACHE"] = str(cache)
    try:
        _reset()
        with warnings.catch_warnings():
            warnings.simplefilter("error", _native.NativeLibraryWarning)
            kmeans_kernel._load()
        built = kmeans_kernel.library_path()
        assert built.exists()
        assert _native.record_path(built).exists()
        keep = tmp_path_factory.mktemp("good") / "good.so"
        shutil.copy(built, keep)
        return keep
    finally:
        if old is None:
            os.environ.pop("QRPROBE_CACHE", None)
        else:
            os.environ["QRPROBE_CACHE"] = old
        _reset()


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("QRPROBE_CACHE", str(tmp_path / "cache"))
    _reset()
    yield tmp_path / "cache" / "kernels"
    monkeypatch.undo()
    _reset()


@pytest.fixture(scope="module")
def data():
    x, bank, _ = make_concept_clusters(240, dim=16, n_noise=2, seed=3)
    return x, bank


@pytest.fixture(scope="module")
def clean_clusterings(data) -> np.ndarray:
    """The clusterings of the portable path (the kernel switched off): the reference of every run below."""
    old = os.environ.get("QRPROBE_KMEANS_KERNEL")
    os.environ["QRPROBE_KMEANS_KERNEL"] = "0"
    try:
        _reset()
        return _clusterings(data)
    finally:
        if old is None:
            os.environ.pop("QRPROBE_KMEANS_KERNEL", None)
        else:
            os.environ["QRPROBE_KMEANS_KERNEL"] = old
        _reset()


def _reset() -> None:
    kmeans_kernel._load.cache_clear()
    _native.forget()


def _clusterings(data) -> np.ndarray:
    x, bank = data
    return np.asarray(evaluate(x, bank, **PARAMS).clusterings)


def _record(path: Path) -> None:
    """A forged build record that matches ``path`` (so only the child-process check can catch it)."""
    data = path.read_bytes()
    _native.record_path(path).write_text(json.dumps({"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}))


def _fake_compiler(tmp: Path, good: Path) -> str:
    """A stand-in for ``cc`` that writes the known-good library to its ``-o`` argument."""
    script = tmp / "fakecc"
    script.write_text("#!/bin/sh\nwhile [ $# -gt 0 ]; do\n"
                      f"  if [ \"$1\" = -o ]; then cp '{good}' \"$2\"; fi; shift\ndone\n")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return str(script)


def _compile_tiny(tmp: Path, body: str) -> Path:
    src = tmp / "tiny.c"
    src.write_text(body)
    out = tmp / "tiny.so"
    subprocess.run([_native.compiler(), "-shared", "-fPIC", "-o", str(out), str(src)], check=True)
    return out


def _plant(kind: str, target: Path, good: Path, tmp: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    if kind == "truncated":  # the campaign's case: the good library and its record, then `head -c 4000`
        shutil.copy(good, target)
        _record(target)
        target.write_bytes(good.read_bytes()[:4000])
    elif kind == "foreign":
        shutil.copy(_compile_tiny(tmp, "int something_else(void) { return 1; }\n"), target)
    elif kind == "wrong-abi":
        shutil.copy(_compile_tiny(tmp, "int qr_abi_version(void) { return 6; }\n"
                                       "int qr_cpu_supported(void) { return 1; }\n"), target)
    else:
        raise AssertionError(kind)


KINDS = ["truncated", "foreign", "wrong-abi"]


def test_a_truncated_library_crashes_the_process_that_loads_it(good, tmp_path):
    """Why the check runs in a child: loading the truncated file in-process is fatal (this test would fail if it
    were harmless, and the child-process check would be needless)."""
    bad = tmp_path / "bad.so"
    bad.write_bytes(good.read_bytes()[:4000])
    run = subprocess.run([sys.executable, "-c", f"import ctypes; ctypes.CDLL({str(bad)!r}).qr_abi_version()"],
                         capture_output=True)
    assert run.returncode != 0


@pytest.mark.parametrize("forged_record", [False, True], ids=["no-record", "forged-record"])
@pytest.mark.parametrize("kind", KINDS)
def test_a_damaged_cached_kernel_falls_back_with_one_warning_and_the_next_run_rebuilds(
        kind, forged_record, cache, good, data, clean_clusterings, tmp_path, monkeypatch):
    target = kmeans_kernel.library_path()
    _plant(kind, target, good, tmp_path)
    if forged_record:
        _record(target)
    # this run: the rebuild fails (no working compiler) → the portable path, one warning, same clusterings
    monkeypatch.setenv("CC", "false")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        got = _clusterings(data)
        kmeans_kernel.load()
    np.testing.assert_array_equal(got, clean_clusterings)
    notes = [w for w in caught if issubclass(w.category, _native.NativeLibraryWarning)]
    assert len(notes) == 1, [str(w.message) for w in caught]
    message = str(notes[0].message)
    assert "using the portable path" in message
    assert target.name in message
    assert "\n" not in message
    expected = {"truncated": "crashes the process" if forged_record else "does not match its build record",
                "foreign": "undefined symbol: qr_abi_version" if forged_record else "has no valid build record",
                "wrong-abi": "ABI version 6, expected 7" if forged_record else "has no valid build record"}[kind]
    assert expected in message
    assert kmeans_kernel.load() is None
    assert expected in kmeans_kernel.unavailable()
    assert not target.exists(), "the damaged file is removed so that the next run builds afresh"

    # the next run (a new process: caches forgotten) rebuilds a valid file
    _reset()
    monkeypatch.setenv("CC", _fake_compiler(tmp_path, good))
    with warnings.catch_warnings():
        warnings.simplefilter("error", _native.NativeLibraryWarning)
        lib, why = _native.load_library("kmeans_bf16", kmeans_kernel.SOURCES, kmeans_kernel.HEADERS,
                                        abi_symbol="qr_abi_version", abi_version=kmeans_kernel._ABI,
                                        flags=kmeans_kernel.FLAGS)
        assert lib is not None
        assert why == ""
        assert target.read_bytes() == good.read_bytes()


@pytest.mark.parametrize("kind", KINDS)
def test_a_damaged_file_is_rebuilt_in_the_same_run_when_a_compiler_works(kind, cache, good, data,
                                                                          clean_clusterings, tmp_path, monkeypatch):
    target = kmeans_kernel.library_path()
    _plant(kind, target, good, tmp_path)
    _record(target)
    monkeypatch.setenv("CC", _fake_compiler(tmp_path, good))
    with warnings.catch_warnings():
        warnings.simplefilter("error", _native.NativeLibraryWarning)
        np.testing.assert_array_equal(_clusterings(data), clean_clusterings)
        lib, _ = _native.load_library("kmeans_bf16", kmeans_kernel.SOURCES, kmeans_kernel.HEADERS,
                                      abi_symbol="qr_abi_version", abi_version=kmeans_kernel._ABI,
                                      flags=kmeans_kernel.FLAGS)
    assert lib is not None
    assert target.read_bytes() == good.read_bytes()


def test_a_valid_cached_library_is_checked_once_and_not_rebuilt(cache, good, tmp_path, monkeypatch):
    target = kmeans_kernel.library_path()
    target.parent.mkdir(parents=True)
    shutil.copy(good, target)
    _record(target)
    monkeypatch.setenv("CC", "false")  # a rebuild would fail and warn
    calls = []
    real = _native._child_check
    monkeypatch.setattr(_native, "_child_check", lambda *a: calls.append(a) or real(*a))
    with warnings.catch_warnings():
        warnings.simplefilter("error", _native.NativeLibraryWarning)
        for _ in range(3):
            kmeans_kernel._load.cache_clear()
            kmeans_kernel._load()
            _native._loaded.clear()  # a new call, the same process: the file is hashed again, not re-loaded
    assert len(calls) == 1


def test_a_foreign_library_named_by_the_caller_is_refused_without_loading_it(cache, tmp_path, monkeypatch):
    """The generic API: sources that build fine but lack the ABI symbol give (None, reason) and one warning."""
    src = tmp_path / "plain.c"
    src.write_text("int plain(void) { return 3; }\n")
    with pytest.warns(_native.NativeLibraryWarning, match="undefined symbol: qr_abi"):
        lib, why = _native.load_library("plain", [src], abi_symbol="qr_abi", abi_version=1)
    assert lib is None
    assert "undefined symbol: qr_abi" in why
    src.write_text("int qr_abi(void) { return 1; }\n")
    lib, why = _native.load_library("plain", [src], abi_symbol="qr_abi", abi_version=1)
    assert lib is not None
    assert lib.qr_abi() == 1
    assert why == ""


def test_no_compiler_and_nothing_cached_is_quiet(cache, monkeypatch):
    monkeypatch.setenv("CC", "")
    monkeypatch.setattr(_native.shutil, "which", lambda name: None)
    with warnings.catch_warnings():
        warnings.simplefilter("error", _native.NativeLibraryWarning)
        assert kmeans_kernel.load() is None
    assert "no C compiler" in kmeans_kernel.unavailable()


@pytest.mark.slow
def test_a_truncated_kernel_is_rebuilt_by_the_real_compiler(cache, good, data, clean_clusterings):
    target = kmeans_kernel.library_path()
    target.parent.mkdir(parents=True)
    target.write_bytes(good.read_bytes()[:4000])
    _record(target)
    with warnings.catch_warnings():
        warnings.simplefilter("error", _native.NativeLibraryWarning)
        np.testing.assert_array_equal(_clusterings(data), clean_clusterings)
    data_now = target.read_bytes()
    assert len(data_now) > 4000
    assert json.loads(_native.record_path(target).read_text())["sha256"] == hashlib.sha256(data_now).hexdigest()


def test_two_processes_loading_at_once_build_once(tmp_path):
    """The build lock: two processes asking for the same library in an empty cache both get it, built once."""
    src = tmp_path / "tiny.c"
    src.write_text("int qr_abi(void) { return 4; }\n")
    log = tmp_path / "builds.log"
    wrapper = tmp_path / "cc"
    wrapper.write_text(f"#!/bin/sh\necho build >> '{log}'\nsleep 1\nexec '{_native.compiler()}' \"$@\"\n")
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IEXEC)
    script = ("import sys; from qrprobe import _native\n"
              f"lib, why = _native.load_library('tiny', [{str(src)!r}], abi_symbol='qr_abi', abi_version=4)\n"
              "sys.exit(0 if lib is not None and lib.qr_abi() == 4 else f'failed: {why}')\n")
    env = {**os.environ, "CC": str(wrapper), "QRPROBE_CACHE": str(tmp_path / "cache"),
           "PYTHONPATH": str(Path(_native.__file__).parents[1])}
    procs = [subprocess.Popen([sys.executable, "-c", script], env=env, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
    assert log.read_text().splitlines() == ["build"]
