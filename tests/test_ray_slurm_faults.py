"""Ray and Slurm failures that explain themselves (issue 23 item 4).

- an unreachable ``--address`` (refused port, unknown host) is a one-line exit-2 error naming the address within
  seconds, before any output is written (Ray itself retries for minutes);
- actors that would take every CPU of the cluster (``--num-cpus 1 --actors 1``: nothing left to decode) get
  fractional CPUs instead of waiting for ever; more GPUs than the cluster has are refused;
- ``--executor slurm`` on a host without Slurm is a one-line exit-2 error before any folder is created;
- ``--backend ray`` without Ray installed names the ``ray`` extra.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from qrprobe.cli.main import main
from qrprobe.errors import MissingExtraError, QRProbeInputError
from qrprobe.features.extract import run_extraction
from qrprobe.raycluster import RayOptions, check_address, resolve_pool
from qrprobe.synthetic import write_image_folder

REPO = Path(__file__).resolve().parents[1]


class Cluster:
    """A stand-in for the ``ray`` module: only ``cluster_resources``."""

    def __init__(self, cpus: float, gpus: float = 0) -> None:
        self.resources = {"CPU": cpus, "GPU": gpus} if gpus else {"CPU": cpus}

    def cluster_resources(self) -> dict:
        return self.resources


@pytest.mark.parametrize(("address", "says"), [
    ("127.0.0.1:1", "no Ray cluster answers there"),
    ("ray://127.0.0.1:1", "no Ray cluster answers there"),
    ("nosuchhost.invalid:6379", "unknown host 'nosuchhost.invalid'"),
    ("host:port", "expected HOST:PORT"),
])
def test_an_unreachable_address_is_named_at_once(address, says):
    start = time.monotonic()
    with pytest.raises(QRProbeInputError, match=f"^--address {address}: .*{says}"):
        check_address(address)
    assert time.monotonic() - start < 10


def test_auto_and_no_address_are_not_checked():
    check_address(None)
    check_address("auto")


@pytest.mark.parametrize("address", ["127.0.0.1:1", "nosuchhost.invalid:6379"])
def test_cli_extract_with_an_unreachable_address_fails_before_any_work(address, tmp_path, capsys):
    images = write_image_folder(tmp_path / "imgs", {"a": 2})
    out = tmp_path / "f"
    start = time.monotonic()
    assert main(["extract", "pixels-4", str(images), "-o", str(out), "--backend", "ray", "--address", address,
                 "--quiet"]) == 2
    assert time.monotonic() - start < 10
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert f"--address {address}" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["imgs"]  # no store, no .f.partial


def test_an_unreachable_ray_address_variable_is_named_too(tmp_path, monkeypatch, capsys):
    """Without --address, ray.init joins the cluster RAY_ADDRESS names: checked the same way."""
    monkeypatch.setenv("RAY_ADDRESS", "127.0.0.1:1")
    images = write_image_folder(tmp_path / "imgs", {"a": 2})
    assert main(["extract", "pixels-4", str(images), "-o", str(tmp_path / "f"), "--backend", "ray", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "RAY_ADDRESS 127.0.0.1:1: no Ray cluster answers there" in err
    assert "unset RAY_ADDRESS" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["imgs"]


def test_cli_label_with_an_unreachable_address_fails_before_any_work(tmp_path, capsys):
    images = write_image_folder(tmp_path / "imgs", {"a": 2})
    assert main(["label", str(images), "--experts", "color", "-o", str(tmp_path / "bank"), "--backend", "ray",
                 "--address", "127.0.0.1:1", "--quiet"]) == 2
    assert "--address 127.0.0.1:1: no Ray cluster answers there" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["imgs"]


def test_actors_that_would_take_every_cpu_get_a_share_and_decoding_keeps_one():
    with pytest.warns(RuntimeWarning, match="has 1 CPU"):
        pool = resolve_pool(Cluster(1), RayOptions(actors=1, num_cpus=1), "cpu")
    assert pool.size == 1
    assert pool.num_cpus + pool.decode_cpus <= 1
    assert pool.num_cpus > 0
    assert pool.decode_cpus > 0
    assert pool.threads == 1
    with pytest.warns(RuntimeWarning, match="fewer than 8 actor"):
        many = resolve_pool(Cluster(4), RayOptions(actors=8), "cpu")
    assert many.size * many.num_cpus + many.decode_cpus <= 4 + 1e-9
    # requests that fit are left as they are, without a warning
    fits = resolve_pool(Cluster(4), RayOptions(actors=2), "cpu")
    assert (fits.num_cpus, fits.decode_cpus) == (1.0, 1.0)


def test_more_gpu_actors_than_gpus_are_refused():
    with pytest.raises(QRProbeInputError, match=r"--actors 3 with 1 GPU\(s\) each need 3 GPU\(s\); the Ray cluster "
                                                r"has 2"):
        resolve_pool(Cluster(16, 2), RayOptions(actors=3), "cuda")


@pytest.mark.slow
def test_one_cpu_and_one_actor_finish_instead_of_hanging(tmp_path):
    """The campaign's command: before, the actor held the only CPU and no image was ever decoded."""
    pytest.importorskip("ray")
    images = write_image_folder(tmp_path / "imgs", {"a": 2, "b": 2})
    ray_tmp = tempfile.mkdtemp(prefix="qrp-ray-", dir="/tmp")  # Ray's socket paths must stay under 108 bytes
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "RAY_TMPDIR": ray_tmp}
    args = [sys.executable, "-m", "qrprobe", "extract", "pixels-4", str(images), "-o", str(tmp_path / "f"),
            "--backend", "ray", "--num-cpus", "1", "--actors", "1", "--quiet", "--device", "cpu"]
    proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)  # its own process group: a hang is killed with its Ray runtime
    try:
        _, stderr = proc.communicate(timeout=300)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        pytest.fail("extract --num-cpus 1 --actors 1 did not finish within 300 s (the actor holds every CPU?)")
    finally:
        shutil.rmtree(ray_tmp, ignore_errors=True)
    assert proc.returncode == 0, stderr[-2000:]
    assert (tmp_path / "f" / "manifest.json").exists()


def test_without_ray_the_error_names_the_extra(tmp_path, monkeypatch, capsys):
    """``ray`` not importable (no Ray runtime runs in this module, so none has to be shut down first)."""
    root = write_image_folder(tmp_path / "imgs", {"a": 2})
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(MissingExtraError, match=r"qrprobe\[ray\]"):
        run_extraction("pixels-4", root, tmp_path / "f", backend="ray", progress=False)
    assert main(["label", str(root), "--experts", "color", "-o", str(tmp_path / "b"), "--backend", "ray"]) == 2
    assert "pip install 'qrprobe[ray]'" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------------------- Slurm
def test_executor_slurm_without_slurm_is_one_line_before_any_folder(tmp_path, monkeypatch, capsys):
    pytest.importorskip("submitit")
    from test_study import STUDY, _images

    images = _images(tmp_path / "images", per_class=2)
    out = tmp_path / "out"
    study = tmp_path / "study.yaml"
    study.write_text(STUDY.format(images=images, output=out, report="false"))
    empty = tmp_path / "bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    assert main(["run", str(study), "--executor", "slurm"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "--executor slurm: this host has no Slurm (sbatch and srun not on PATH)" in err
    assert "--cluster local" in err
    assert not out.exists()
