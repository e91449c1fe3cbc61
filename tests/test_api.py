"""The public API: every exported name resolves, and ``import qrprobe`` stays light."""

from __future__ import annotations

import subprocess
import sys

import qrprobe


def test_every_export_resolves():
    for name in qrprobe.__all__:
        assert getattr(qrprobe, name) is not None


def test_import_does_not_load_torch():
    code = "import sys, qrprobe; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
