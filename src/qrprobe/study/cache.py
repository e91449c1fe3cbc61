"""Stage keys: a study's outputs are named by a hash of everything they depend on.

A stage's directory is ``<kind>/<name>-<key>``; when the directory is complete, the stage is done and is
reused. A change anywhere upstream changes the key, so exactly the stages that depend on it run again.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path


def stage_key(payload: object, length: int = 12) -> str:
    """A short, stable hash of a JSON-serialisable payload."""
    text = json.dumps(payload, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def file_identity(path: str | os.PathLike | None) -> dict | None:
    """Identify a user file for cache keys: its path, size and modification time (None for no file)."""
    if path is None:
        return None
    p = Path(path)
    if p.is_dir():
        entries = sorted((str(q.relative_to(p)), q.stat().st_size, q.stat().st_mtime_ns) for q in p.rglob("*")
                         if q.is_file())
        return {"path": str(p.resolve()), "entries": stage_key(entries)}
    st = p.stat()
    return {"path": str(p.resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def slug(name: str) -> str:
    """A file-name-safe version of ``name``."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "item"
