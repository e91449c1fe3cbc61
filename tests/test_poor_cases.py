"""The poor cases of the hostile-input campaign (issue 23 item 5), each with the command that showed it.

- a NaN score in a result was compared and reported without a word: now flagged wherever a result is read
  (``Result.load``: a warning flag that marks its rows, and one ``warning:`` line; compare; report);
- numpy's "allow_pickle=" hint was quoted for a garbage ``.npy`` / corrupt ``.npz``: our own message naming
  the file;
- ``extract … --std 0,0,0`` ran the model and left ``.NAME.partial/``: refused before any work;
- ``transfer … --without Objects`` named a flag ``--drop-group`` that does not exist;
- N = 20 with K = 2–10 printed numpy's ``RuntimeWarning: invalid value encountered in divide`` from the bootstrap;
- ``--compare-solver sgd`` with solver sgd printed the same row twice: refused before any work.
"""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest

from _hostile import FAST, evaluate_example
from qrprobe.cli.main import main
from qrprobe.engine.stats.bootstrap import replicate_scores
from qrprobe.engine.stats.corrected import ChanceReference
from qrprobe.errors import QRProbeInputError
from qrprobe.metrics import score_details
from qrprobe.progress import console_output
from qrprobe.results import Result
from qrprobe.synthetic import make_concept_clusters, write_image_folder


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory, write_example) -> tuple[Path, Path, Path]:
    """(features.npy, concepts, a result directory) of the small example."""
    base = tmp_path_factory.mktemp("poor")
    features, concepts = write_example(base)
    return features, concepts, evaluate_example((features, concepts), base / "result")


def _with_nan_nmi(result: Path, where: Path, name: str = "nanrun") -> Path:
    shutil.copytree(result, where)
    data = json.loads((where / "results.json").read_text())
    data["summary"]["nmi"]["mean"] = float("nan")
    data["summary"]["nmi"]["values"] = [float("nan")]
    data["per_clustering"][0]["nmi"] = float("nan")
    data["name"] = name
    (where / "results.json").write_text(json.dumps(data))  # json writes NaN
    return where


# ------------------------------------------------------------------------------------------------ NaN scores
def test_a_result_read_with_a_nan_score_is_flagged_once(evaluated, tmp_path, capsys):
    bad = _with_nan_nmi(evaluated[2], tmp_path / "bad")
    with console_output():  # as the CLI prints warnings (a library call logs them)
        _check_nan_flagged_once(evaluated, bad, capsys)


def _check_nan_flagged_once(evaluated, bad, capsys):
    res = Result.load(bad)
    assert res.undefined_scores() == ["NMI"]
    flags = [f for f in res.inputs["flags"] if f["code"] == "undefined_score"]
    assert len(flags) == 1
    assert flags[0]["level"] == "warning"
    assert any("undefined (NaN or infinite) scores of NMI" in w for w in res.inputs["warnings"])
    Result.load(bad)  # read again: no second line
    err = capsys.readouterr().err
    assert err.count("warning: result") == 1
    assert f"{str(bad)!r} (nanrun): undefined (NaN or infinite) scores of NMI" in err
    clean = Result.load(evaluated[2])
    assert clean.undefined_scores() == []
    assert "undefined (NaN" not in capsys.readouterr().err


def test_compare_flags_a_nan_score(evaluated, tmp_path, capsys):
    bad = _with_nan_nmi(evaluated[2], tmp_path / "bad")
    assert main(["compare", str(evaluated[2]), str(bad), "-o", str(tmp_path / "cmp")]) == 0
    captured = capsys.readouterr()
    assert "undefined (NaN or infinite) scores of NMI" in captured.err
    assert "nanrun ⚠" in captured.out  # the row is marked, ranked last
    ranking = [line for line in captured.out.splitlines() if line.startswith("| ") and ("nanrun" in line or
                                                                                        "| features" in line)]
    assert "nanrun" in ranking[1]


@pytest.mark.slow
def test_the_report_flags_a_nan_score(evaluated, tmp_path, capsys):
    bad = _with_nan_nmi(evaluated[2], tmp_path / "bad")
    assert main(["report", str(evaluated[2]), str(bad), "-o", str(tmp_path / "report.html")]) == 0
    assert "undefined (NaN or infinite) scores of NMI" in capsys.readouterr().err
    html = (tmp_path / "report.html").read_text()
    assert "nanrun ⚠" in html or "nanrun&nbsp;⚠" in html


# ------------------------------------------------------------------------------------ damaged .npy and .npz
def test_a_garbage_npy_is_named_without_numpys_pickle_hint(evaluated, tmp_path, capsys):
    garbage = tmp_path / "garbage.npy"
    garbage.write_bytes(np.random.default_rng(0).bytes(300))
    assert main(["evaluate", str(garbage), str(evaluated[1]), *FAST, "-o", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert "allow_pickle" not in err
    assert "pickle.load" not in err
    assert f"{str(garbage)!r} cannot be read as FEATURES" in err
    assert "not a numpy array file" in err
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize(("name", "content"), [
    ("standardizer.npz", b"PK\x03\x04garbage"),
    ("standardizer.npz", bytes(range(256)) * 2),
    ("coef.npy", bytes(range(256))),
])
def test_a_corrupt_array_of_a_result_is_named(evaluated, tmp_path, capsys, name, content):
    damaged = tmp_path / "damaged"
    shutil.copytree(evaluated[2], damaged)
    (damaged / name).write_bytes(content)
    with pytest.raises(QRProbeInputError) as info:
        Result.load(damaged)
    message = str(info.value)
    assert f"{str(damaged / name)!r} cannot be read" in message
    assert "allow_pickle" not in message
    assert main(["compare", str(evaluated[2]), str(damaged), "-o", str(tmp_path / "cmp")]) == 2
    err = capsys.readouterr().err
    assert name in err
    assert "allow_pickle" not in err


# ------------------------------------------------------------------------------------------- --std 0,0,0
@pytest.mark.parametrize(("flag", "value", "says"), [
    ("--std", "0,0,0", "--std: expected three finite numbers (R, G, B) above 0"),
    ("--std", "1,-1,1", "--std: expected three finite numbers (R, G, B) above 0"),
    ("--mean", "nan,0,0", "--mean: expected three finite numbers"),
])
def test_a_degenerate_normalisation_is_refused_before_any_work(tmp_path, capsys, flag, value, says):
    images = write_image_folder(tmp_path / "imgs", {"a": 2})
    out = tmp_path / "feats"
    assert main(["extract", "efficientnet-lite0-random", str(images), "-o", str(out), flag, value, "--quiet",
                 "--device", "cpu"]) == 2
    assert says in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["imgs"]  # no store, no .feats.partial


# --------------------------------------------------------------------------------------- transfer --without
def test_transfer_names_the_flag_that_exists(evaluated, tmp_path, capsys):
    features, concepts, result = evaluated
    assert main(["transfer", str(result), str(features), str(concepts), "--without", "Objects", "-o",
                 str(tmp_path / "t")]) == 2
    err = capsys.readouterr().err
    assert "--drop-groups needs --source-concepts" in err
    assert "--drop-group " not in err
    assert "--drop-group:" not in err
    assert main(["transfer", str(result), str(features), str(concepts), "--drop-groups", "Nope", "-o",
                 str(tmp_path / "t")]) == 2
    assert "--drop-groups: the result's probe has no group(s) ['Nope']" in capsys.readouterr().err


# ------------------------------------------------------------------------------ N = 20: no numpy warnings
def test_a_bootstrap_replicate_that_draws_no_image_is_nan_quietly():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 6)
    logits = rng.normal(size=(6, 3))
    log_proba = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    _, d = score_details(y, log_proba)
    weights = np.ones((6, 3))
    weights[:, 1] = 0  # this replicate drew no test image
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = replicate_scores(d, weights, 50.0, ChanceReference.from_train(y, 3))
    assert np.isfinite(out[:, 0]).all()
    assert np.isnan(out[:, 1]).sum() > 0


@pytest.mark.parametrize("k", [2, 10])
def test_twenty_images_print_no_numpy_warning(tmp_path, capsys, k):
    features, bank, _ = make_concept_clusters(20, dim=8, n_objects=4, n_scenes=2, seed=0)
    np.save(tmp_path / "f.npy", features)
    bank.save(tmp_path / "c")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        code = main(["evaluate", str(tmp_path / "f.npy"), str(tmp_path / "c"), "--k", str(k), "--clusterings", "2",
                     "--epochs", "2", "--iters", "5", "--restarts", "1", "--quiet", "-o", str(tmp_path / "r")])
    assert code == 0
    numpy_warnings = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
    assert numpy_warnings == []
    assert "RuntimeWarning" not in capsys.readouterr().err


# ------------------------------------------------------------------------------------ --compare-solver
def test_comparing_a_solver_with_itself_is_refused_before_any_work(evaluated, tmp_path, capsys):
    features, concepts, _ = evaluated
    out = tmp_path / "r"
    assert main(["evaluate", str(features), str(concepts), *FAST, "--compare-solver", "sgd", "-o", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.splitlines()[-1].endswith("--compare-solver sgd: the protocol's solver is already sgd; compare with "
                                         "lbfgs, or pass --solver lbfgs")
    assert not out.exists()
    assert main(["evaluate", str(features), str(concepts), *FAST, "--solver", "lbfgs", "--compare-solver", "lbfgs",
                 "-o", str(out)]) == 2
    assert "already lbfgs" in capsys.readouterr().err
