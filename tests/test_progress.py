"""Progress output: silent when off, plain lines (no carriage returns) off a terminal, bars on a terminal, the
study's ``[stage i/n]`` counter; and the helpers of :mod:`qrprobe.progress` (scopes, warnings once, the ETA)."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from qrprobe import progress
from qrprobe.analysis.breakdown import group_breakdown
from qrprobe.analysis.ksweep import k_sweep
from qrprobe.engine.evaluate import evaluate
from qrprobe.synthetic import make_object_scene


@pytest.fixture(scope="module")
def scene():
    return make_object_scene(n=600)


def test_progress_off_prints_nothing(scene, capsys, fast_config):
    evaluate(scene.features, scene.bank, fast_config(k=6), name="synth", progress=False)
    group_breakdown(scene.features, scene.bank, config=fast_config(k=6, n_clusterings=1), progress=False)
    captured = capsys.readouterr()
    # the one notice kept without progress: these synthetic arrays have no image ids to match rows by
    assert all("rows were matched by position" in line for line in captured.err.splitlines())
    assert captured.out == ""


def test_off_a_terminal_plain_lines_name_model_k_and_clustering(scene, capsys, fast_config):
    evaluate(scene.features, scene.bank, fast_config(k=6), name="synth", progress=True)
    err = capsys.readouterr().err
    assert "\r" not in err  # no bars in logs
    lines = err.splitlines()
    assert any(re.match(r"synth · K-means K=6, clustering 2/2 \(seed 1\): \d+ iterations", line) for line in lines)
    assert any(line.startswith("synth · probe K=6, clustering 1/2 (seed 0): NMI") for line in lines)
    assert len(lines) < 20  # a few lines per clustering, not one per epoch or iteration


def test_breakdown_counts_its_steps(scene, capsys, fast_config):
    group_breakdown(scene.features, scene.bank, label_group=scene.bank.groups[0],
                    config=fast_config(k=6, n_clusterings=1), name="synth", progress=True)
    steps = re.findall(r"breakdown step (\d+)/(\d+)", capsys.readouterr().err)
    assert steps
    assert [int(i) for i, _ in steps] == list(range(1, len(steps) + 1))
    assert {int(n) for _, n in steps} == {len(steps)}


def test_k_sweep_names_k_and_model_and_warns_once(scene, capsys, monkeypatch, fast_config):
    import qrprobe.engine.evaluate as ev

    monkeypatch.setattr(ev, "provenance_warnings", lambda bank, prov, name: ["circular: the expert is the model"])
    k_sweep(scene.features, scene.bank, [4, 6], config=fast_config(n_clusterings=1), name="synth", progress=True)
    err = capsys.readouterr().err
    assert err.count("warning: synth: circular: the expert is the model") == 1  # names the model, once
    kmeans = [line for line in err.splitlines() if "K-means" in line]
    assert any(line.startswith("synth · K sweep 1/2: K=4 · K-means K=4") for line in kmeans)
    assert any(line.startswith("synth · K sweep 2/2: K=6 · K-means K=6") for line in kmeans)


def test_warnings_print_with_progress_off_in_the_cli_only(scene, capsys, caplog, monkeypatch, fast_config):
    """The CLI (console output) prints warnings whatever --quiet says; a library call with progress=False
    prints nothing and hands them to the ``qrprobe`` logger; progress=True prints them."""
    import logging

    import qrprobe.engine.evaluate as ev

    monkeypatch.setattr(ev, "provenance_warnings", lambda bank, prov, name: ["look here"])
    with progress.console_output():
        evaluate(scene.features, scene.bank, fast_config(k=6, n_clusterings=1), progress=False)
    assert capsys.readouterr().err.splitlines()[0] == "warning: features: look here"  # the warning names its model
    with caplog.at_level(logging.INFO, logger="qrprobe"):
        result = evaluate(scene.features, scene.bank, fast_config(k=6, n_clusterings=1), progress=False)
    assert capsys.readouterr().err == ""
    assert "look here" in result.inputs["warnings"]
    assert next(r.getMessage() for r in caplog.records if r.levelname == "WARNING") == "features: look here"
    evaluate(scene.features, scene.bank, fast_config(k=6, n_clusterings=1), progress=True)
    assert "warning: features: look here" in capsys.readouterr().err


_ON_A_TERMINAL = """
from qrprobe.engine.config import ProbeConfig, ProtocolConfig
from qrprobe.engine.evaluate import evaluate
from qrprobe.synthetic import make_object_scene
data = make_object_scene(n=400)
config = ProtocolConfig(k=6, clusterings=1, iters=30, restarts=2, device="cpu",
                        probe=ProbeConfig(epochs=15, milestones=(10, 13)))
evaluate(data.features, data.bank, config, name="synth", progress={enabled})
"""


def _stderr_on_a_terminal(enabled: bool) -> str:
    """stderr of a small evaluate() run whose stderr is a pseudo-terminal."""
    pty = pytest.importorskip("pty")
    master, slave = pty.openpty()
    code = _ON_A_TERMINAL.format(enabled=enabled)
    proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=slave, env={**os.environ, "COLUMNS": "120"})
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:  # the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    assert proc.wait(timeout=300) == 0, b"".join(chunks).decode(errors="replace")
    return b"".join(chunks).decode(errors="replace").replace("\r\n", "\n")  # the terminal's own line ends


def test_on_a_terminal_a_bar_with_rate_appears():
    err = _stderr_on_a_terminal(True)
    assert "\r" in err
    assert re.search(r"K-means K=6, clustering 1/1 \(seed 0\)[^\r\n]*\d+/\d+ \[", err)  # a drawn bar
    assert re.search(r"probe M=\d+→K=6:[^\r\n]*epoch/s", err)  # rate of the probe's epochs


def test_on_a_terminal_progress_off_prints_nothing():
    err = _stderr_on_a_terminal(False)
    assert "\r" not in err
    assert all("matched by position" in line for line in err.splitlines())


def test_scopes_prefix_and_are_not_repeated(capsys):
    with progress.scope("model"), progress.scope("K=4"), progress.scope("model"):
        progress.note("step")
    with progress.scope(None):
        progress.note("bare")
    progress.note("hidden", enabled=False)
    assert capsys.readouterr().err.splitlines() == ["model · K=4 · step", "bare"]


def test_warnings_and_notes_inside_once_print_once(capsys):
    with progress.console_output(), progress.once():
        for k in range(3):
            progress.warn("same")
            with progress.scope(f"K={k}"):
                progress.remark("the battery differs")
        progress.warn("other")
    with progress.console_output():
        progress.warn("same")
    progress.warn("silent outside the CLI")
    assert capsys.readouterr().err.splitlines() == ["warning: same", "K=0 · note: the battery differs",
                                                     "warning: other", "warning: same"]


def test_stage_eta_uses_the_mean_time_per_stage_kind(monkeypatch):
    clock = iter([0.0, 0.0, 10.0, 10.0, 10.0, 12.0, 12.0, 20.0, 20.0, 20.0])
    monkeypatch.setattr(progress.time, "perf_counter", lambda: next(clock))
    lines: list[str] = []
    counter = progress.StageCounter(["extract", "extract", "label", "extract", "evaluate"], emit=lines.append)
    counter.begin("extract", "extract a")  # t=0
    counter.end("extract", computed=True)  # t=10: one extract took 10 s
    assert counter.eta() == (pytest.approx(20.0), 2)  # two more extracts; label and evaluate not timed
    counter.begin("extract", "extract b")  # t=10
    counter.end("extract", computed=False)  # reused: not timed
    counter.begin("label", "label x")  # t=12
    counter.end("label", computed=True)  # t=20: 8 s
    counter.begin("extract", "extract c")  # t=20
    assert lines == ["[stage 1/5] extract a",
                     "[stage 2/5] extract b (elapsed 10 s, about 20 s left + 2 item(s) not timed yet)",
                     "[stage 3/5] label x (elapsed 12 s, about 10 s left + 2 item(s) not timed yet)",
                     "[stage 4/5] extract c (elapsed 20 s, about 10 s left + 1 item(s) not timed yet)"]


def test_format_seconds():
    assert [progress.format_seconds(s) for s in (3.21, 42, 185, 7260)] == ["3.2 s", "42 s", "3 min 05 s",
                                                                         "2 h 01 min"]
