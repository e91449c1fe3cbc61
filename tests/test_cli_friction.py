"""CLI and study friction (issue 22 item 4): a bare ``--force``, ``protocol.solver``'s did-you-mean, a quiet
``compare``, the demo's stated duration and the flag on a score whose spread is as large as its mean."""

from __future__ import annotations

import re

import numpy as np
import pytest

from qrprobe.cli.main import main
from qrprobe.engine.degenerate import spread_flag
from qrprobe.errors import QRProbeInputError
from qrprobe.results import markdown_table
from qrprobe.study.runner import STAGES, expand_force


def _run_parser():
    import argparse

    from qrprobe.cli import run

    parser = argparse.ArgumentParser()
    run.add_parser(parser.add_subparsers())
    return parser


@pytest.mark.parametrize(("argv", "force"), [
    (["run", "s.yaml", "--force"], ["all"]),
    (["run", "s.yaml", "--force", "all"], ["all"]),
    (["run", "s.yaml", "--force", "label", "--force", "report"], ["label", "report"]),
    (["run", "--force", "evaluate", "s.yaml"], ["evaluate"]),
    (["demo", "--force"], ["all"]),
])
def test_force_alone_means_every_stage(argv, force):
    args = _run_parser().parse_args(argv)
    assert args.force == force
    assert expand_force(args.force) == (STAGES if force == ["all"] else tuple(force))


def test_force_before_the_study_file_says_where_to_put_it(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["run", "--force", "study.yaml"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "put --force after the study file: qrprobe run study.yaml --force" in err
    with pytest.raises(QRProbeInputError, match="unknown stage"):
        expand_force(["evaluat"])


def test_protocol_solver_points_to_protocol_probe_solver(tmp_path):
    from qrprobe.study.load import load_study

    (tmp_path / "images").mkdir()
    study = tmp_path / "study.yaml"
    study.write_text(f"name: s\nimages: {{source: {tmp_path / 'images'}}}\nmodels: [{{name: p, model: pixels-4}}]\n"
                     "experts: [{name: color}]\nprotocol: {k: 4, solver: lbfgs, clustrings: 2}\n")
    with pytest.raises(QRProbeInputError) as err:
        load_study(study)
    message = str(err.value)
    assert "protocol.solver: unknown key 'solver'; did you mean protocol.probe.solver?" in message
    assert "unknown key 'clustrings'; did you mean 'clusterings'?" in message


def test_compare_quiet_prints_nothing(tmp_path, capsys):
    import qrprobe
    from qrprobe.concepts import ConceptBank
    from qrprobe.synthetic import make_concept_combinations

    x, concepts, _ = make_concept_combinations(n=200, n_bits=2, seed=1)
    bank = ConceptBank.from_matrix(concepts, ["a", "b"])
    fast = {"k": 4, "clusterings": 1, "iters": 5, "restarts": 1, "epochs": 2, "device": "cpu", "null_repeats": 0,
            "bootstrap": 0}
    for name, features in (("clean", x), ("shifted", x + 1.0)):
        qrprobe.evaluate(features, bank, name=name, **fast).save(tmp_path / name)
    capsys.readouterr()
    argv = ["compare", str(tmp_path / "clean"), str(tmp_path / "shifted"), "-o"]
    assert main([*argv, str(tmp_path / "quiet"), "--quiet"]) == 0
    assert capsys.readouterr() == ("", "")
    assert (tmp_path / "quiet").is_dir()
    assert main([*argv, str(tmp_path / "loud")]) == 0
    out, err = capsys.readouterr()
    assert "clean" in out
    assert "written:" in err


def test_demo_help_states_a_measured_duration(capsys):
    with pytest.raises(SystemExit):
        main(["demo", "--help"])
    text = capsys.readouterr().out
    assert "few minutes" not in text
    assert "About 40 seconds" in text
    assert re.search(r"\d+(-\d+)? s measured on a quiet", text), text


def test_a_spread_as_large_as_the_mean_is_flagged():
    rows = [{"nmi": 0.0, "top1": 40.0}, {"nmi": 53.52, "top1": 42.0}]  # NMI 26.76 ± 26.76
    flag = spread_flag(rows)
    assert flag is not None
    assert flag.level == "warning"
    assert "nmi 26.8 ± 26.8" in flag.message
    assert "top1" not in flag.message
    assert spread_flag([{"nmi": 30.0}, {"nmi": 32.0}]) is None
    assert spread_flag([{"nmi": 30.0}]) is None  # one clustering has no spread


def test_the_flag_reaches_results_and_tables():
    import qrprobe
    from qrprobe.concepts import ConceptBank

    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 4))
    bank = ConceptBank.from_matrix((rng.random((60, 3)) < 0.5).astype(np.uint8), list("abc"))
    result = qrprobe.evaluate(x, bank, k=3, clusterings=4, iters=5, restarts=1, epochs=2, device="cpu",
                              null_repeats=0, bootstrap=0)  # noise: the clusterings disagree
    nmi = result.summary["nmi"]
    codes = [f["code"] for f in result.inputs["flags"]]
    assert ("spread_as_large_as_mean" in codes) == (nmi["std"] >= nmi["mean"] > 0)
    if result.inputs["flags"]:
        assert "⚠" in markdown_table([result])
