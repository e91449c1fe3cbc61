"""Library versions recorded in every artifact's manifest."""

from __future__ import annotations

import platform
from importlib import metadata

_PACKAGES = ("qrprobe", "numpy", "scipy", "scikit-learn", "torch", "faiss-cpu", "pandas", "pyarrow")


def library_versions(extra: tuple[str, ...] = ()) -> dict[str, str]:
    """Return ``{package: version}`` for the packages that shape results (absent ones are omitted)."""
    out = {"python": platform.python_version()}
    for name in (*_PACKAGES, *extra):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out
