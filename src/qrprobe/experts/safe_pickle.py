"""Reading legacy pickled weight files without executing code: a restricted unpickler that builds only NumPy
arrays, dtypes, dicts and lists.

Some published checkpoints are not torch files but pickles of a ``dict`` of NumPy arrays saved with
``np.save(allow_pickle=True)`` (MMdnn conversions such as the T4SA sentiment VGG-19). ``np.load(...,
allow_pickle=True)`` would run whatever the pickle names; :func:`load_numpy_pickle` reads the ``.npy`` header
itself and unpickles the payload with :class:`RestrictedUnpickler`, whose ``find_class`` allows only the few
NumPy reconstruction functions an array needs. Anything else (``os.system``, ``builtins.eval``, any class) is a
:class:`QRProbeInputError` naming the file and the refused global.
"""

from __future__ import annotations

import io
import os
import pickle
from typing import Any

import numpy as np

from ..errors import QRProbeInputError

#: (module, name) pairs a weights pickle may reference: array and dtype reconstruction only.
ALLOWED_GLOBALS = frozenset({
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"), ("numpy", "dtype"),
    ("collections", "OrderedDict"),
    ("_codecs", "encode"),  # Python-2 byte strings in protocol-2 pickles
})


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that refuses every global outside :data:`ALLOWED_GLOBALS`."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in ALLOWED_GLOBALS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refused global {module}.{name}")


def restricted_loads(data: bytes, *, encoding: str = "ASCII") -> Any:
    """Unpickle ``data`` with :class:`RestrictedUnpickler`."""
    return RestrictedUnpickler(io.BytesIO(data), encoding=encoding).load()


def load_numpy_pickle(path: str | os.PathLike) -> Any:
    """The object stored in a ``.npy`` file (a pickled object array is unpickled restrictively; a 0-d object
    array gives its item, e.g. the dict of an MMdnn weights file)."""
    try:
        with open(path, "rb") as f:
            version = np.lib.format.read_magic(f)
            reader = np.lib.format.read_array_header_1_0 if version == (1, 0) else \
                np.lib.format.read_array_header_2_0
            _, _, dtype = reader(f)
            if not dtype.hasobject:
                f.seek(0)
                return np.load(f, allow_pickle=False)
            payload = f.read()
    except (OSError, ValueError) as exc:
        raise QRProbeInputError(f"{str(path)!r}: not a NumPy .npy file ({exc})") from None
    last: Exception | None = None
    for encoding in ("ASCII", "latin1"):
        try:
            obj = restricted_loads(payload, encoding=encoding)
            break
        except pickle.UnpicklingError as exc:
            if "refused global" in str(exc):
                raise QRProbeInputError(f"{str(path)!r}: the pickle asks for code ({exc}); only arrays and dicts "
                                        "are loaded, for safety") from None
            last = exc
        except (UnicodeDecodeError, EOFError, ValueError, TypeError) as exc:
            last = exc
    else:
        raise QRProbeInputError(f"{str(path)!r}: cannot unpickle its weights ({type(last).__name__}: {last})")
    if isinstance(obj, np.ndarray) and obj.dtype.hasobject and obj.shape == ():
        return obj.item()
    return obj


def text_keys(obj: Any) -> Any:
    """Nested dicts with ``bytes`` keys (Python-2 pickles read as latin-1) turned into ``str`` keys."""
    if isinstance(obj, dict):
        return {(k.decode("latin1") if isinstance(k, bytes) else k): text_keys(v) for k, v in obj.items()}
    return obj
