"""Search-space files: the shipped ones validate, the grid expands, bad files get one clear line."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from harness.cli import main
from harness.study.space import flatten, load_space, trial_configs
from harness.study.tuning import tune_configs

REPO = Path(__file__).resolve().parent.parent
SHIPPED = sorted((REPO / "search_spaces").rglob("*.yaml"))


def test_the_paper_studies_are_shipped():
    names = {p.stem for p in SHIPPED}
    assert {"smoke", "dense_depth_mnist", "conv_dense_mnist", "highway_cifar10",
            "layer_langevin_dense30_mnist", "resnet20_cifar10", "resnet20_cifar100",
            "densenet_cifar10"} <= names


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_shipped_spaces_validate_and_expand(path):
    spec = load_space(path)
    if spec.tuning is None:
        configs = trial_configs(spec)
        runs_per_arm = len(spec.seeds)
    else:
        configs = tune_configs(spec)
        runs_per_arm = spec.tuning.budget
    assert len(configs) == len(spec.model.depths) * len(spec.optimizers) * runs_per_arm
    assert len({c["trial_key"] for c in configs}) == len(configs)
    # every Langevin arm has its baseline twin (same base optimizer, sigma 0) in the study
    bases = {c["base_optimizer"] for c in configs if c["variant"] == "baseline"}
    assert {c["base_optimizer"] for c in configs} == bases


def test_dense_depth_study_is_the_papers():
    spec = load_space(REPO / "search_spaces" / "dense_depth_mnist.yaml")
    assert spec.model.depths == [3, 20, 30, 40]
    assert sorted(o.display for o in spec.optimizers) == sorted(
        ["Adam", "L-Adam", "RMSprop", "L-RMSprop", "Adadelta", "L-Adadelta"])
    layer = load_space(REPO / "search_spaces" / "layer_langevin_dense30_mnist.yaml")
    assert {o.layer_fraction for o in layer.optimizers} == {1.0, 0.3}
    assert "LL-Adam" in {o.display for o in layer.optimizers}


def test_trial_keys_are_stable_and_configs_flatten():
    spec = load_space(REPO / "search_spaces" / "smoke.yaml")
    first, again = trial_configs(spec), trial_configs(spec)
    assert [c["trial_key"] for c in first] == [c["trial_key"] for c in again]
    flat = flatten({"a": 1, "hyper": {"beta_1": 0.9}, "s": {"name": "log", "epochs": 2}})
    assert flat == {"a": 1, "hyper.beta_1": 0.9, "s.name": "log", "s.epochs": 2}


GOOD = {
    "name": "bad",
    "dataset": {"name": "synthetic"},
    "model": {"family": "dense", "depths": [2]},
    "optimizers": [{"base": "adam", "learning_rate": 0.001}],
    "seeds": 1,
    "epochs": 1,
}

BAD_CASES = [
    ("unknown top-level key", {"epoch": 3}, "unknown field 'epoch'; allowed here: name"),
    ("unknown nested key", {"model": {"family": "dense", "depths": [2], "width": 3}},
     "unknown field 'model.width'; allowed here: family, depths, options"),
    ("wrong type", {"epochs": "many"}, "field 'epochs'"),
    ("empty depth list", {"model": {"family": "dense", "depths": []}}, "field 'model.depths'"),
    ("unknown optimizer", {"optimizers": [{"base": "lion", "learning_rate": 0.1}]},
     "field 'optimizers.0.base': Input should be 'sgd', 'adam', 'rmsprop', 'adadelta' or 'adagrad'"),
    ("unknown model", {"model": {"family": "transformer", "depths": [2]}},
     "field 'model.family': Input should be 'dense', 'conv_dense'"),
    ("unknown dataset", {"dataset": {"name": "imagenet"}},
     "field 'dataset.name': Input should be 'mnist', 'fashion_mnist'"),
    ("impossible depth", {"model": {"family": "resnet", "depths": [21]}},
     "field 'model.depths' (21)"),
    ("negative sigma", {"optimizers": [{"base": "adam", "learning_rate": 0.1, "sigma": -1}]},
     "field 'optimizers.0.sigma'"),
    ("fraction above 1",
     {"optimizers": [{"base": "adam", "learning_rate": 0.1, "layer_fraction": 2}]},
     "field 'optimizers.0.layer_fraction'"),
    ("unknown schedule",
     {"optimizers": [{"base": "adam", "learning_rate": 0.1, "sigma_schedule": {"name": "cos"}}]},
     "unknown schedule name 'cos'; allowed: constant, log"),
    ("unknown hyper-parameter",
     {"optimizers": [{"base": "rmsprop", "learning_rate": 0.1, "hyper": {"beta_1": 0.9}}]},
     "unknown hyper-parameter(s) ['beta_1']; allowed for rmsprop: rho"),
    ("missing field", {"epochs": None}, "field 'epochs'"),
    ("bad seeds", {"seeds": [1, 1]}, "field 'seeds'"),
]


@pytest.mark.parametrize("case, change, message", BAD_CASES, ids=[c[0] for c in BAD_CASES])
def test_bad_files_get_one_line_naming_file_and_field(tmp_path, capsys, case, change, message):
    data = {**GOOD, **change}
    data = {k: v for k, v in data.items() if v is not None}
    path = tmp_path / "space.yaml"
    path.write_text(yaml.safe_dump(data))
    assert main(["run", str(path), "--dry-run"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert str(path) in err
    assert message in err


def test_missing_file_and_bad_yaml(tmp_path, capsys):
    assert main(["run", str(tmp_path / "nope.yaml"), "--dry-run"]) == 2
    assert "no such search-space file" in capsys.readouterr().err
    broken = tmp_path / "broken.yaml"
    broken.write_text("name: [unclosed\n")
    assert main(["run", str(broken), "--dry-run"]) == 2
    assert "not valid YAML" in capsys.readouterr().err


def test_dry_run_prints_the_trial_table(capsys):
    assert main(["run", str(REPO / "search_spaces" / "smoke.yaml"), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "2 depths × 2 optimizers × 3 seeds" in out
    assert out.count("dense10-L-Adam-s") == 3
