"""The network (issue 11, class 9): no telemetry, and offline hub names fail after one attempt, not 30-60 s.

No test needs the network: a machine without one is simulated by replacing the socket functions, which also
counts every connection attempt.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest

from _hostile import REPO
from qrprobe import _network
from qrprobe.cli.main import main
from qrprobe.errors import QRProbeInputError
from qrprobe.synthetic import write_image_folder


@pytest.fixture
def offline(monkeypatch, tmp_path):
    """No network: every lookup or connection fails and is recorded. Caches point at empty folders."""
    attempts: list[str] = []

    def lookup(host, *args, **kwargs):
        attempts.append(f"getaddrinfo {host}")
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    def connect(address, *args, **kwargs):
        attempts.append(f"connect {address[0]}")
        raise OSError(101, "Network is unreachable")

    monkeypatch.setattr(socket, "getaddrinfo", lookup)
    monkeypatch.setattr(socket, "create_connection", connect)
    for name in ("HF_HUB_OFFLINE", "QRPROBE_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("QRPROBE_CACHE", str(tmp_path / "qrprobe"))
    import huggingface_hub.constants as hub

    monkeypatch.setattr(hub, "HF_HUB_OFFLINE", False)  # restored after the test (the guard switches it on)
    monkeypatch.setattr(hub, "HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    _network._reachable.cache_clear()
    yield attempts
    _network._reachable.cache_clear()


@pytest.mark.parametrize(("spec", "host"), [("timm:resnet18", "huggingface.co"),
                                       ("torchvision:resnet18", "download.pytorch.org"),
                                       ("open_clip:RN50:openai", "huggingface.co")])
def test_an_offline_hub_name_fails_after_one_attempt(offline, spec, host):
    from qrprobe.models import create_representation

    with pytest.raises(QRProbeInputError, match=rf"MODEL {spec}: could not get the pretrained weights \(offline: "
                                                rf"{host} cannot be reached"):
        create_representation(spec)
    assert offline == [f"connect {host}"], offline  # the one probe; the hub library made no attempt of its own


def test_the_clip_expert_and_expert_weights_fail_after_one_attempt(offline, tmp_path):
    from qrprobe.experts.weights import resolve_weights

    with pytest.raises(QRProbeInputError, match=r"offline: places2\.csail\.mit\.edu cannot be reached"):
        resolve_weights("places365", None, url="http://places2.csail.mit.edu/models/wideresnet18.pth.tar")
    assert offline == ["connect places2.csail.mit.edu"]
    images = write_image_folder(tmp_path / "imgs", {"a": 2})
    assert main(["label", str(images), "--experts", "clip-style", "-o", str(tmp_path / "c"), "--quiet"]) == 2
    assert offline[1:] == ["connect huggingface.co"]


def test_qrprobe_offline_makes_no_attempt_at_all(offline, monkeypatch):
    from qrprobe.models import create_representation

    monkeypatch.setenv("QRPROBE_OFFLINE", "1")
    with pytest.raises(QRProbeInputError, match="offline: QRPROBE_OFFLINE is set"):
        create_representation("timm:resnet18")
    assert offline == []


@pytest.mark.parametrize("command", [
    ["label", "{images}", "--experts", "color,image-stats,labels", "-o", "{out}", "--quiet"],
    ["extract", "pixels-4", "{images}", "-o", "{out}", "--workers", "0", "--quiet"],
], ids=["label", "extract"])
def test_offline_work_opens_no_connection(command, offline, tmp_path, capsys):
    images = write_image_folder(tmp_path / "imgs", {"a": 3, "b": 3})
    args = [a.format(images=images, out=tmp_path / "out") for a in command]
    assert main(args) == 0
    assert offline == [], offline


def test_telemetry_is_off_once_qrprobe_is_imported():
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_DISABLE_TELEMETRY", "DO_NOT_TRACK")}
    env["PYTHONPATH"] = str(REPO / "src")
    code = ("import os, qrprobe, huggingface_hub.constants as c; "
            "print(os.environ['HF_HUB_DISABLE_TELEMETRY'], os.environ['DO_NOT_TRACK'], c.HF_HUB_DISABLE_TELEMETRY)")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.stdout.split() == ["1", "1", "True"], out.stderr


def test_a_hub_imported_before_qrprobe_is_switched_too(monkeypatch):
    import huggingface_hub.constants as hub

    monkeypatch.setattr(hub, "HF_HUB_DISABLE_TELEMETRY", False)
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    _network.disable_telemetry()
    assert hub.HF_HUB_DISABLE_TELEMETRY is True
