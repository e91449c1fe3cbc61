"""The network use of the libraries qrprobe drives: no telemetry, and a quick, clear failure when offline.

Telemetry. huggingface_hub (which timm, open_clip and transformers download through) sends usage pings unless
``HF_HUB_DISABLE_TELEMETRY`` (or ``DO_NOT_TRACK``) is set; :func:`disable_telemetry` sets both when qrprobe is
imported, before any of these libraries is, and also switches the setting of an already imported
huggingface_hub. ONNX Runtime documents ``disable_telemetry_events()`` (its telemetry exists on Windows
builds only); the experts call it when they load ONNX Runtime. The other run-time dependencies (torch,
torchvision, OpenCV, mediapipe 0.10.14, rapidocr-onnxruntime, matplotlib, wordcloud) have no telemetry.

Offline. huggingface_hub retries a failed connection five times with back-off, for each file a model needs,
which made an offline hub name fail only after 30–60 s. Before a hub download qrprobe makes one TCP connection
to the host (:func:`offline_reason`; at most :data:`PROBE_TIMEOUT` seconds, remembered for the process). When
it fails, or ``QRPROBE_OFFLINE`` / ``HF_HUB_OFFLINE`` is set, :func:`hub_download_mode` switches the hub
libraries to their offline mode — files already in the local cache still load, anything else fails at once —
and the caller's error message says why.
"""

from __future__ import annotations

import functools
import os
import socket
import sys
from typing import Any
from urllib.parse import urlparse

#: Seconds the one connection attempt may take.
PROBE_TIMEOUT = 3.0
_TRUE = ("1", "true", "yes", "on")


def disable_telemetry() -> None:
    """Opt out of the telemetry of every dependency that has a documented switch (see the module docstring)."""
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    hub: Any = sys.modules.get("huggingface_hub.constants")  # its settings are plain module attributes
    if hub is not None and os.environ["HF_HUB_DISABLE_TELEMETRY"].strip().lower() in _TRUE:
        hub.HF_HUB_DISABLE_TELEMETRY = True


def disable_onnxruntime_telemetry(ort) -> None:
    """ONNX Runtime's documented telemetry switch (a no-op on builds without telemetry)."""
    switch = getattr(ort, "disable_telemetry_events", None)
    if callable(switch):
        switch()


def _set(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in _TRUE


def hf_host() -> str:
    """The HuggingFace Hub host (``HF_ENDPOINT`` when set)."""
    return urlparse(os.environ.get("HF_ENDPOINT") or "https://huggingface.co").hostname or "huggingface.co"


@functools.lru_cache(maxsize=32)
def _reachable(host: str, port: int) -> str | None:
    try:
        with socket.create_connection((host, port), timeout=PROBE_TIMEOUT):
            return None
    except OSError as exc:
        return f"{host} cannot be reached ({exc.strerror or type(exc).__name__})"


def offline_reason(host: str, port: int = 443) -> str | None:
    """Why downloads from ``host`` cannot work now, or None when they may: ``QRPROBE_OFFLINE`` set, or one
    connection attempt failed (the answer is remembered for the process)."""
    if _set("QRPROBE_OFFLINE"):
        return "QRPROBE_OFFLINE is set"
    return _reachable(host, port)


def url_offline_reason(url: str) -> str | None:
    """:func:`offline_reason` for the host of ``url``."""
    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        return None
    return offline_reason(parsed.hostname, parsed.port or (443 if parsed.scheme == "https" else 80))


def hub_download_mode() -> str | None:
    """Before a HuggingFace Hub download: when the hub cannot be used, switch the hub libraries to offline mode
    (cached files only, no retries) and return why; else None."""
    reason = "HF_HUB_OFFLINE is set" if _set("HF_HUB_OFFLINE") else offline_reason(hf_host())
    if reason is not None:
        os.environ["HF_HUB_OFFLINE"] = "1"
        hub: Any = sys.modules.get("huggingface_hub.constants")
        if hub is not None:
            hub.HF_HUB_OFFLINE = True
    return reason


__all__ = ["PROBE_TIMEOUT", "disable_onnxruntime_telemetry", "disable_telemetry", "hf_host", "hub_download_mode",
           "offline_reason", "url_offline_reason"]
