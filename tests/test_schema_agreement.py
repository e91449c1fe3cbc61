"""One schema: the library, the CLI, the study YAML and the estimator agree on names, defaults and help."""

from __future__ import annotations

import argparse
import dataclasses
import inspect

import pytest
from sklearn.base import clone

from qrprobe.cli.main import build_parser
from qrprobe.engine.config import (
    KMeansConfig,
    ProbeConfig,
    ProtocolConfig,
    config_fields,
    flat_defaults,
    flat_params,
)
from qrprobe.engine.estimator import ReverseProbing
from qrprobe.errors import ParameterError, QRProbeInputError
from qrprobe.study.load import study_from_dict
from qrprobe.workflow.analyses import ANALYSES


def _subparsers() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def _options(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    return {opt: a for a in parser._actions for opt in a.option_strings if a.help != argparse.SUPPRESS}


def test_library_cli_yaml_and_estimator_defaults_are_the_same_values():
    library = flat_defaults()
    assert library == flat_params(ProtocolConfig())
    evaluate_cli = _subparsers()["evaluate"]
    cli = {name: evaluate_cli.get_default(name) for name in library}
    assert cli == library
    study = study_from_dict({"name": "s", "images": {"source": "."}, "models": [{"name": "m", "model": "pixels"}],
                             "experts": [{"name": "color"}]}, {}, __import__("pathlib").Path("."))
    assert flat_params(study.protocol_config()) == library
    estimator = ReverseProbing().get_params()
    estimator.pop("progress")
    assert estimator == library


def test_estimator_parameters_are_exactly_the_protocol_fields():
    params = inspect.signature(ReverseProbing.__init__).parameters
    names = [n for n in params if n not in ("self", "progress")]
    assert sorted(names) == sorted(flat_defaults())
    for name in names:
        assert params[name].default == flat_defaults()[name], name


def test_estimator_clones_and_sets_params_like_scikit_learn():
    est = ReverseProbing(k=50, clusterings=3, lr_decay=0.5)
    twin = clone(est)
    assert twin is not est
    assert twin.get_params() == est.get_params()
    twin.set_params(k=100, epochs=7)
    assert twin.protocol().k == 100
    assert twin.protocol().probe.epochs == 7
    assert est.k == 50
    with pytest.raises(ParameterError, match=r"^k: "):
        ReverseProbing(k=1).protocol()


def test_deprecated_names_still_work_with_a_warning():
    with pytest.warns(FutureWarning, match="n_clusterings"):
        cfg = ProtocolConfig.from_params(n_clusterings=3, gamma=0.5)
    assert cfg.clusterings == 3
    assert cfg.probe.lr_decay == 0.5
    assert ProbeConfig.from_dict({"gamma": 0.2}).lr_decay == 0.2  # results written before 0.2
    with pytest.raises(TypeError, match="did you mean 'clusterings'"):
        ProtocolConfig.from_params(clusterngs=3)


@pytest.mark.parametrize(("field", "value"), [("lr", float("nan")), ("lr", 1e308), ("weight_decay", float("inf")),
                                              ("milestones", (9, 1)), ("lr_decay", -1.0), ("epochs", 0)])
def test_bad_probe_values_name_the_field(field, value):
    with pytest.raises(ParameterError) as info:
        ProbeConfig(**{field: value})
    assert info.value.param == field
    assert str(info.value).startswith(f"{field}: ")


@pytest.mark.parametrize(("field", "value"), [("seed", -1), ("seed", 2**40), ("k", 1), ("clusterings", 0),
                                              ("test_fraction", 1.0), ("kmeans_backend", "sklearn"), ("iters", 0),
                                              ("restarts", 10**4), ("max_train_points", 1),
                                              ("kmeans_init", "kmeans++"), ("kmeans_precision", "half")])
def test_bad_protocol_values_name_the_field(field, value):
    with pytest.raises(ParameterError) as info:
        ProtocolConfig(**{field: value})
    assert info.value.param == field


def test_every_protocol_field_has_a_flag_named_after_it():
    evaluate_cli = _options(_subparsers()["evaluate"])
    for cls in (ProtocolConfig, KMeansConfig, ProbeConfig):
        for f in config_fields(cls):
            flag = "--" + f.name.replace("_", "-")
            assert flag in evaluate_cli, flag
            assert f.metadata["help"] in evaluate_cli[flag].help


KMEANS = {"k": 50, "iters": 20, "restarts": 2, "max_train_points": 400, "kmeans_backend": "faiss",
          "kmeans_init": "random", "kmeans_precision": "float16"}
SAVED_BEFORE_KMEANS_CONFIG = {  # a result's config as releases before KMeansConfig wrote it
    "k": 50, "clusterings": 3, "seed": 0, "iters": 20, "restarts": 2, "max_train_points": 400,
    "kmeans_backend": "faiss", "kmeans_init": "random", "test_fraction": 0.2, "val_fraction": 0.2,
    "probe": {"lr": 3.5, "momentum": 0.9, "batch_size": 512, "epochs": 100, "milestones": [60, 80], "lr_decay": 0.1,
              "weight_decay": 3e-06, "select": "val_loss", "solver": "sgd", "lbfgs_grid": 8, "lbfgs_iters": 500,
              "lbfgs_penalty": "l2"},
    "device": "auto", "kmeans_precision": "float16", "null_repeats": 1, "bootstrap": 200}


def test_kmeans_fields_are_one_set_of_names_nested_or_flat():
    nested = ProtocolConfig(kmeans=KMeansConfig(**KMEANS), clusterings=3)
    assert nested.kmeans == KMeansConfig(**KMEANS)
    assert ProtocolConfig(**KMEANS, clusterings=3) == nested  # flat keyword arguments, as before
    assert ProtocolConfig.from_params(**KMEANS, clusterings=3) == nested  # evaluate(k=…, …), ReverseProbing(k=…)
    assert dataclasses.replace(ProtocolConfig(), **KMEANS, clusterings=3) == nested
    for name, value in KMEANS.items():
        assert getattr(nested, name) == value  # config.k reads config.kmeans.k
    assert flat_params(nested) == {**flat_defaults(), **KMEANS, "clusterings": 3}
    assert {f.name for f in config_fields(KMeansConfig)} <= set(flat_defaults())


def test_saved_config_keeps_its_flat_form_so_results_and_study_caches_stay_valid():
    old = SAVED_BEFORE_KMEANS_CONFIG
    cfg = ProtocolConfig.from_dict(old)
    assert cfg.kmeans == KMeansConfig(**KMEANS)
    saved = cfg.to_dict()
    assert saved == {**old, "probe": {**old["probe"], "milestones": (60, 80)}}  # the same keys and values
    assert ProtocolConfig.from_dict({**{k: v for k, v in old.items() if k not in KMEANS}, "kmeans": KMEANS}) == cfg
    with pytest.raises(TypeError, match="'k' is given both flat and under 'kmeans'"):
        ProtocolConfig.from_dict({"k": 5, "kmeans": {"k": 6}})


def _study(protocol: dict):
    return study_from_dict({"name": "s", "images": {"source": "."}, "models": [{"name": "m", "model": "pixels"}],
                            "experts": [{"name": "color"}], "protocol": protocol}, {}, __import__("pathlib").Path("."))


def test_the_study_takes_kmeans_keys_flat_or_nested_but_not_both():
    flat = _study({**KMEANS, "clusterings": 3}).protocol
    assert flat == ProtocolConfig(kmeans=KMeansConfig(**KMEANS), clusterings=3)
    assert _study({"kmeans": KMEANS, "clusterings": 3}).protocol == flat
    assert _study({"k": 50, "kmeans": {"iters": 20}}).protocol.kmeans == KMeansConfig(k=50, iters=20)
    with pytest.raises(QRProbeInputError, match=r"protocol\.k: given both here and under 'kmeans'"):
        _study({"k": 50, "kmeans": {"k": 60}})
    with pytest.raises(QRProbeInputError, match=r"protocol\.kmeans\.k: expected an integer ≥ 2, got 1"):
        _study({"kmeans": {"k": 1}})
    with pytest.raises(QRProbeInputError, match=r"protocol\.iters: expected an integer ≥ 1"):
        _study({"iters": 0})
    with pytest.warns(FutureWarning, match="'n_iter' is deprecated, use 'iters'"):
        assert _study({"n_iter": 7}).protocol.iters == 7


def test_cli_kmeans_flags_fill_the_nested_config():
    args = _subparsers()["evaluate"].parse_args(["f.npy", "c", "-o", "x", "--k", "50", "--iters", "20", "--restarts",
                                                 "2", "--max-train-points", "400", "--kmeans-backend", "faiss",
                                                 "--kmeans-precision", "float16", "--clusterings", "3"])
    from qrprobe.cli.options import protocol_from_args

    assert protocol_from_args(args) == ProtocolConfig(kmeans=KMeansConfig(**KMEANS), clusterings=3)


SHARED = ("-o", "--out", "--overwrite", "--quiet", "--device", "--groups", "--drop-groups", "--concept-names",
          "--clusterings", "--seed", "--k", "--lr", "--name")
OWN_HELP = ("-o", "--out", "--name", "--seed", "--drop-groups")  # same flag, what it writes/seeds/drops differs
OWN_DEFAULT = ("-o", "--out", "--device", "--name")


def test_shared_flags_agree_across_every_command():
    seen: dict[str, tuple] = {}
    for command, parser in _subparsers().items():
        for flag, action in _options(parser).items():
            if flag not in SHARED or (command, flag) == ("ksweep", "--k"):  # a K sweep's --k lists the Ks
                continue
            signature = (action.dest, action.help if flag not in OWN_HELP else None,
                         action.default if flag not in OWN_DEFAULT else None)
            if flag in seen and command not in ("run", "demo"):
                assert signature == seen[flag][0], (flag, command, seen[flag][1])
            elif command not in ("run", "demo"):
                seen[flag] = (signature, command)
    assert {"--quiet", "--out", "--drop-groups", "--clusterings", "--device"} <= set(seen)


def test_no_old_spelling_is_advertised_and_every_default_is_shown():
    old = {"--output", "--no-progress", "--without", "--exclude", "--repeats", "--add", "--concepts", "--C"}
    for command, parser in _subparsers().items():
        shown = _options(parser)
        assert not old & set(shown), (command, old & set(shown))
        for flag, action in shown.items():
            if flag in ("-h", "--help", "--version") or isinstance(action, argparse._HelpAction):
                continue
            on_off = action.nargs == 0 and not isinstance(action, argparse.BooleanOptionalAction)
            if action.default not in (None, False, argparse.SUPPRESS) and not on_off:
                assert "default" in (action.help or ""), (command, flag)


def test_old_spellings_keep_working_with_a_deprecation_message(capsys):
    parsers = _subparsers()
    args = parsers["transfer"].parse_args(["r", "f", "c", "-o", "x", "--without", "Labels"])
    assert args.drop_groups == ["Labels"]
    args = parsers["concepts-to-labels"].parse_args(["c", "-o", "x", "--exclude", "A,B", "--repeats", "3"])
    assert args.drop_groups == ["A", "B"]
    assert args.clusterings == 3
    args = parsers["extract"].parse_args(["pixels", "imgs", "-o", "x", "--no-progress"])
    assert args.quiet is True
    args = parsers["run"].parse_args(["study.yaml", "--output", "o"])
    assert args.out == "o"
    err = capsys.readouterr().err
    for old in ("--without", "--exclude", "--repeats", "--no-progress", "--output"):
        assert f"{old} is deprecated" in err


def test_a_wrong_flag_prints_the_subcommands_usage(capsys):
    from qrprobe.cli.main import main

    with pytest.raises(SystemExit) as info:
        main(["breakdown", "f.npy", "c", "-o", "x", "--bogus"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "usage: qrprobe breakdown" in err
    assert "unrecognized arguments: --bogus" in err


def test_every_analysis_has_a_command_and_a_study_key():
    commands = _subparsers()
    from qrprobe.study.config import AnalysesSpec

    keys = {f.name for f in dataclasses.fields(AnalysesSpec)}
    for kind in ANALYSES.values():
        assert kind.name in commands
        assert kind.key in keys
        options = _options(commands[kind.name])
        for f in config_fields(kind.spec):
            if f.metadata.get("cli", True) and f.name != "labels":
                assert "--" + f.name.replace("_", "-") in options, (kind.name, f.name)


def test_cli_parameter_errors_name_the_flag(tmp_path, capsys):
    from qrprobe.cli.main import main

    assert main(["evaluate", "f.npy", "c", "-o", str(tmp_path / "o"), "--lr", "nan"]) == 2
    err = capsys.readouterr().err
    assert "--lr: expected a finite number" in err
    assert "Traceback" not in err
    assert not (tmp_path / "o").exists()


# ------------------------------------------------------------------------------------ extraction and labelling
#: Flags of `extract` / `label` that are no config field: positionals' companions and the per-expert mappings.
CLI_ONLY = {"extract": {"-h", "--help", "-o", "--out", "--quiet", "--address", "--actors", "--num-gpus-per-actor",
                        "--cpus-per-actor", "--num-cpus", "--object-store-gb"},
            "label": {"-h", "--help", "-o", "--out", "--quiet", "--address", "--actors", "--num-gpus-per-actor",
                      "--cpus-per-actor", "--num-cpus", "--object-store-gb", "--experts", "--set", "--weights",
                      "--group", "--vocab", "--labels-table", "--device"}}
#: Config fields whose flag is a shared one with another name (or a group of flags).
SHARED_FLAGS = {"overwrite": "--overwrite", "progress": "--quiet", "ray": "--address"}


def _run_configs():
    from qrprobe.experts.label_config import LabelConfig
    from qrprobe.features.config import ExtractConfig

    return {"extract": ExtractConfig, "label": LabelConfig}


def _field_flag(f) -> str:
    if f.metadata.get("switch") and f.default is True:  # a switch that sets false
        return "--no-" + f.name.replace("_", "-")
    return "--" + f.name.replace("_", "-")


@pytest.mark.parametrize("command", ["extract", "label"])
def test_every_run_field_has_its_flag_with_the_same_default_and_help(command):
    from qrprobe.schema import field_default

    cls = _run_configs()[command]
    parser = _subparsers()[command]
    options = _options(parser)
    fields = config_fields(cls)
    for f in fields:
        if not f.metadata["cli"]:
            assert SHARED_FLAGS[f.name] in options, (command, f.name)
            continue
        flag = _field_flag(f)
        assert flag in options, (command, flag)
        action = options[flag]
        assert action.dest == f.name
        assert parser.get_default(f.name) == field_default(f), (command, f.name)
        text = f.metadata["switch"] if isinstance(f.metadata["switch"], str) else f.metadata["help"]
        assert text in action.help, (command, flag)
        assert action.choices == f.metadata["choices"] or (action.choices is None and not f.metadata["choices"])
    flags = {_field_flag(f) for f in fields if f.metadata["cli"]} | {"--overwrite"}
    assert set(options) - flags == CLI_ONLY[command]  # every other flag is a field


@pytest.mark.parametrize("command", ["extract", "label"])
def test_every_run_field_declares_whether_it_is_part_of_the_key(command):
    from qrprobe.schema import KEY_MODES

    for f in config_fields(_run_configs()[command]):
        assert f.metadata["key"] in KEY_MODES, (command, f.name, "declare key=True, False or 'if_set'")


def test_the_study_states_the_extraction_and_labelling_fields_with_the_same_defaults():
    from pathlib import Path

    from qrprobe.experts.label_config import LabelConfig
    from qrprobe.features.config import ExtractConfig
    from qrprobe.schema import field_default
    from qrprobe.study.config import LabellingSpec, ModelSpec

    for spec, cls in ((ModelSpec, ExtractConfig), (LabellingSpec, LabelConfig)):
        stated = {f.name: f for f in dataclasses.fields(spec)}
        for f in config_fields(cls):
            assert (f.name in stated) == f.metadata["study"], (spec.__name__, f.name)
            if f.name in stated:
                assert field_default(stated[f.name]) == field_default(f), f.name
                assert stated[f.name].metadata == f.metadata, f.name
    study = study_from_dict({"name": "s", "images": {"source": "."},
                             "models": [{"name": "m", "model": "pixels", "layer": "x", "batch_size": 3}],
                             "experts": [{"name": "color"}], "labelling": {"workers": 4}}, {}, Path("."))
    config = study.models[0].extraction(device="cpu")
    assert config == ExtractConfig(layer="x", batch_size=3, device="cpu")
    assert study.labelling.labelling(progress=False) == LabelConfig(workers=4, progress=False)


def test_the_python_signatures_are_the_schemas():
    from qrprobe.experts.label import label_images, run_labelling
    from qrprobe.experts.label_config import LabelConfig
    from qrprobe.features.config import ExtractConfig
    from qrprobe.features.extract import extract, run_extraction
    from qrprobe.schema import field_default

    for fn, cls in ((run_extraction, ExtractConfig), (extract, ExtractConfig), (run_labelling, LabelConfig),
                    (label_images, LabelConfig)):
        params = {n: p for n, p in inspect.signature(fn).parameters.items() if p.kind is p.KEYWORD_ONLY}
        fields = {f.name: field_default(f) for f in config_fields(cls)}
        assert {n: p.default for n, p in params.items() if n in fields} == fields, fn.__name__
    with pytest.raises(TypeError, match="did you mean 'chunk_size'"):
        run_labelling([], ["color"], chunk_sise=4)
    with pytest.raises(ParameterError, match=r"^workers: "):
        extract("pixels", [], "x", workers=-1)


def test_the_estimator_signature_is_made_from_the_protocol_schema():
    params = inspect.signature(ReverseProbing).parameters
    assert all(p.kind is p.KEYWORD_ONLY for p in params.values())
    assert {n: p.default for n, p in params.items() if n != "progress"} == flat_defaults()
    with pytest.raises(TypeError, match="did you mean 'epochs'"):
        ReverseProbing(epoch=3)
