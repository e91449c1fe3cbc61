"""Compiled C helpers that cannot take the process down: build, cache, verify, then load with ctypes.

One call, :func:`load_library`, gives a C shared library built from the given sources, or ``None`` and the
reason it cannot be had::

    lib, why = load_library("kmeans_bf16", sources, headers, abi_symbol="qr_abi_version", abi_version=7,
                            flags=("-O3",))

What it guarantees:

- **Cache.** The library is built with ``$CC`` (else ``cc``, ``gcc``, ``clang``) into
  ``$QRPROBE_CACHE/kernels/`` (default ``~/.cache/qrprobe/kernels``), named ``NAME-HASH.so`` where HASH covers
  the sources, headers, flags and ABI version: changed sources give a new file, never a stale one. Beside it,
  ``NAME-HASH.so.sha256`` records the size and SHA-256 of the file as built.
- **Verified before loading.** Before ``ctypes.CDLL`` opens a cached file in this process, its size and SHA-256
  must match the record, and it is loaded first in a short child process (``python -c``) that calls
  ``abi_symbol`` (a C function ``int f(void)``) and must see ``abi_version``. A truncated file (which can end the
  loading process with a bus error), another library at that path (no such symbol), a library of another ABI
  version, or a file whose record is missing or different is therefore never opened here. The child check runs
  once per file content per process.
- **Rebuilt once, then a fallback.** On any mismatch the library is rebuilt once (the new file checked the same
  way); if that fails too, the damaged file is removed where possible, the call returns ``(None, reason)`` and
  one warning (:class:`NativeLibraryWarning`, no traceback) says that the portable path is used. The next
  process builds it again.
- **Concurrency.** A build writes into a temporary folder beside the cache and publishes with ``os.replace``
  (the record first, then the library), under an exclusive ``flock`` on ``NAME-HASH.lock``; a process that sees
  a mismatch takes that lock and looks again before building, so two processes never build the same library at
  once and a reader never opens a half-written file. A read-only cache works when it already holds a valid
  library; otherwise the call falls back.

POSIX only (``fcntl``); the callers check the platform first.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path

from ._cache import cache_root

CHECK_TIMEOUT_S = 60.0  # the child process that loads a library once
BUILD_TIMEOUT_S = 300.0

# the child process: open the library, call the ABI function, print its value; a crash shows as a signal
_CHILD = (
    "import ctypes, sys\n"
    "lib = ctypes.CDLL(sys.argv[1])\n"
    "f = getattr(lib, sys.argv[2])\n"
    "f.restype = ctypes.c_int\n"
    "f.argtypes = []\n"
    "print(int(f()))\n"
)

_lock = threading.Lock()
_loaded: dict[Path, tuple[ctypes.CDLL | None, str]] = {}  # per target: the outcome in this process
_checked: set[tuple[Path, str]] = set()  # (file, sha256) already loaded once in a child process


class NativeLibraryWarning(RuntimeWarning):
    """A compiled helper could not be built or verified; the portable (pure Python/torch) path is used."""


def cache_dir() -> Path:
    """Where compiled libraries are kept: ``$QRPROBE_CACHE/kernels`` (default ``~/.cache/qrprobe/kernels``)."""
    return cache_root() / "kernels"


def compiler() -> str | None:
    """The C compiler to use: ``$CC``, else the first of ``cc``, ``gcc``, ``clang`` on PATH; None if none."""
    return os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")


def library_path(name: str, sources: Sequence[Path], headers: Sequence[Path] = (), *, abi_version: int,
                 flags: Sequence[str] = ()) -> Path:
    """The cached file ``NAME-HASH.so`` for these sources, headers, flags and ABI version (HASH: 16 hex digits
    of a SHA-256 over all of them; the compiler is not part of it)."""
    h = hashlib.sha256()
    for f in (*sources, *headers):
        h.update(Path(f).name.encode() + b"\0" + Path(f).read_bytes() + b"\0")
    h.update(json.dumps([list(flags), abi_version]).encode())
    return cache_dir() / f"{name}-{h.hexdigest()[:16]}.so"


def record_path(target: Path) -> Path:
    """The build record beside a library: ``NAME-HASH.so.sha256`` (JSON: size, sha256)."""
    return target.with_name(target.name + ".sha256")


def load_library(name: str, sources: Sequence[Path], headers: Sequence[Path] = (), *, abi_symbol: str,
                 abi_version: int, flags: Sequence[str] = ()) -> tuple[ctypes.CDLL | None, str]:
    """The library built from ``sources`` (C files; ``headers`` only count towards the cache name, their folders
    are on the include path), verified and loaded: ``(lib, "")``, or ``(None, why)`` where it cannot be had.

    name : file name stem in the cache (``NAME-HASH.so``).
    abi_symbol, abi_version : a C function ``int abi_symbol(void)`` in the library that returns ``abi_version``;
        a cached file that does not is rebuilt.
    flags : extra compiler flags (``-O3``, ``-march=…``); ``-fPIC -shared`` are always given.

    The outcome is remembered for the rest of the process (one child check, one build at most, one warning).
    See the module docstring for what is verified.
    """
    target = library_path(name, sources, headers, abi_version=abi_version, flags=flags)
    with _lock:
        if target not in _loaded:
            _loaded[target] = _load(target, [Path(s) for s in sources], [Path(h) for h in headers], abi_symbol,
                                    abi_version, list(flags))
        return _loaded[target]


def forget() -> None:
    """Forget what this process has loaded and checked (tests: the next call verifies and loads again)."""
    with _lock:
        _loaded.clear()
        _checked.clear()


# ------------------------------------------------------------------------------------------------------ internals
def _load(target: Path, sources: list[Path], headers: list[Path], abi_symbol: str, abi_version: int,
          flags: list[str]) -> tuple[ctypes.CDLL | None, str]:
    problem = _verify(target, abi_symbol, abi_version) if target.exists() else "missing"
    if problem is None:
        return _open(target)
    if problem == "missing" and compiler() is None:
        return None, "no C compiler found (set CC)"
    try:
        with _build_lock(target):
            # another process may have rebuilt it while this one waited for the lock
            problem = _verify(target, abi_symbol, abi_version) if target.exists() else "missing"
            if problem is None:
                return _open(target)
            try:
                _build(target, sources, headers, abi_symbol, abi_version, flags)
                after = _verify(target, abi_symbol, abi_version)
                if after is not None:
                    raise OSError(f"the rebuilt library {after}")
            except (OSError, subprocess.SubprocessError):
                if problem != "missing":
                    _remove_damaged(target)  # the next process builds afresh instead of tripping over it
                raise
    except (OSError, subprocess.SubprocessError) as exc:
        first = "" if problem == "missing" else f"the cached {target.name} {problem}; "
        why = f"{first}building it failed ({_short(exc)})"
        # one line on stderr (no source line under it): located at "qrprobe", not at a line of code
        warnings.warn_explicit(f"compiled helper {target.name} unavailable, using the portable path: {why}",
                               NativeLibraryWarning, "qrprobe", 0)
        return None, why
    return _open(target)


def _open(target: Path) -> tuple[ctypes.CDLL | None, str]:
    try:
        return ctypes.CDLL(str(target)), ""
    except OSError as exc:  # verified in a child a moment ago: only a race or the environment gets here
        return None, f"{target.name} could not be loaded ({_short(exc)})"


def _verify(target: Path, abi_symbol: str, abi_version: int) -> str | None:
    """None when ``target`` matches its build record and passes the child check, else what is wrong."""
    try:
        data = target.read_bytes()
    except OSError as exc:
        return f"cannot be read ({exc.strerror or exc})"
    try:
        record = json.loads(record_path(target).read_text(encoding="utf-8"))
        size, digest = int(record["size"]), str(record["sha256"])
    except (OSError, ValueError, KeyError, TypeError):
        return "has no valid build record"
    actual = hashlib.sha256(data).hexdigest()
    if len(data) != size or actual != digest:
        return f"does not match its build record ({len(data)} bytes, recorded {size})"
    if (target, actual) in _checked:
        return None
    problem = _child_check(target, abi_symbol, abi_version)
    if problem is None:
        _checked.add((target, actual))
    return problem


def _child_check(path: Path, abi_symbol: str, abi_version: int) -> str | None:
    """Load ``path`` in a short child process and call ``abi_symbol``; None when it returns ``abi_version``."""
    try:
        run = subprocess.run([sys.executable, "-I", "-S", "-c", _CHILD, str(path), abi_symbol],
                             capture_output=True, text=True, timeout=CHECK_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return f"did not load within {CHECK_TIMEOUT_S:.0f} s in a child process"
    except OSError as exc:
        return f"could not be checked in a child process ({exc.strerror or exc})"
    if run.returncode < 0:
        return f"crashes the process that loads it (signal {-run.returncode})"
    if run.returncode != 0:
        last = (run.stderr.strip().splitlines() or ["no message"])[-1]
        return f"cannot be loaded ({last})"
    got = run.stdout.strip()
    if got != str(abi_version):
        return f"has ABI version {got or '?'}, expected {abi_version}"
    return None


@contextlib.contextmanager
def _build_lock(target: Path) -> Iterator[None]:
    import fcntl

    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.with_name(target.name.removesuffix(".so") + ".lock"), "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _build(target: Path, sources: list[Path], headers: list[Path], abi_symbol: str, abi_version: int,
           flags: list[str]) -> None:
    """Compile into a temporary folder beside ``target``, check the result in a child process, then publish the
    record and the library with ``os.replace``. Raises OSError / SubprocessError."""
    cc = compiler()
    if cc is None:
        raise OSError("no C compiler found (set CC)")
    includes = sorted({str(Path(h).parent) for h in headers} | {str(Path(s).parent) for s in sources})
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=f".{target.name}.") as tmp:
        out = Path(tmp) / target.name
        run = subprocess.run([cc, "-fPIC", "-shared", *flags, *(f"-I{d}" for d in includes), "-o", str(out),
                              *map(str, sources)], capture_output=True, text=True, timeout=BUILD_TIMEOUT_S)
        if run.returncode != 0:
            last = (run.stderr.strip().splitlines() or [f"exit code {run.returncode}"])[-1]
            raise OSError(f"{Path(cc).name}: {last}")
        problem = _child_check(out, abi_symbol, abi_version)
        if problem is not None:
            raise OSError(f"the new build {problem}")
        data = out.read_bytes()
        record = Path(tmp) / "record"
        record.write_text(json.dumps({"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}),
                          encoding="utf-8")
        os.replace(record, record_path(target))
        os.replace(out, target)  # readers without the lock see the old or the new file whole, never half of one


def _remove_damaged(target: Path) -> None:
    for path in (target, record_path(target)):
        with contextlib.suppress(OSError):
            path.unlink()


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[-1] if text else type(exc).__name__
