"""Search-space files: the shipped ones validate, the grid expands, bad files get one clear line."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from harness.cli import main
from harness.errors import HarnessError
from harness.study.space import depth_part, flatten, load_space, trial_configs
from harness.study.tuning import rounds, tune_configs

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
        assert len(configs) == len(spec.model.depths) * len(spec.optimizers) * len(spec.seeds)
    else:  # the first round's arms: every arm, or the plain arms of a noise-only study
        configs = tune_configs(spec)
        first = rounds(spec)[0]
        assert len(first) == len(spec.model.depths) * len(spec.optimizers) // len(rounds(spec))
        assert len(configs) == len(first) * spec.tuning.budget
    assert len({c["trial_key"] for c in configs}) == len(configs)
    # every Langevin arm has its baseline twin (same base optimizer, sigma 0, same depth) in the
    # study, or, for a part recorded in another study's experiment, in that study's file
    studies = [spec]
    if spec.experiment_name != spec.name:
        studies += [load_space(p) for p in SHIPPED if p.stem == spec.experiment_name]
        assert len(studies) == 2, f"no shipped file for experiment {spec.experiment_name!r}"
    bases = {(o.base, depth) for study in studies for o in study.optimizers if o.sigma == 0
             for depth in study.model.depths}
    assert {(c["base_optimizer"], c["depth"]) for c in configs} <= bases


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
    ("unknown top-level key", {"epoch": 3}, "unknown field 'epoch' (did you mean 'epochs'?); "
     "allowed here: name"),
    ("typo of a missing field", {"epochs": None, "epoch": 3},
     "'epoch' is not a field; did you mean 'epochs'?"),
    ("typo of a missing nested field", {"model": {"family": "dense", "depth": [2]}},
     "'model.depth' is not a field; did you mean 'depths'?"),
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
    broken.write_text("name: x\ndataset: {name: mnist\nmodel: [\n")
    assert main(["run", str(broken), "--dry-run"]) == 2
    assert "not valid YAML at line 3, column 6: expected ',' or '}'" in capsys.readouterr().err
    assert main(["run"]) == 2
    err = capsys.readouterr().err
    assert "give a search-space file" in err and "not both" not in err


def test_dry_run_prints_the_trial_table(capsys):
    assert main(["run", str(REPO / "search_spaces" / "smoke.yaml"), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "2 depths × 2 optimizers × 3 seeds" in out
    assert out.count("dense10-L-Adam-s") == 3


def test_a_depth_part_is_the_study_cut_to_its_depths_in_the_same_experiment():
    path = Path("search_spaces/dense_depth_mnist_tuned.yaml")
    whole = load_space(path)
    part = depth_part(whole, [20, 3], path)
    assert (part.name, part.experiment_name) == ("dense_depth_mnist_tuned-d3-20",
                                                 "dense_depth_mnist_tuned")
    assert part.model.depths == [3, 20]
    assert part.model_dump(exclude={"name", "experiment", "model"}) == whole.model_dump(
        exclude={"name", "experiment", "model"})
    # the same tuning draws as the whole study at those depths
    draws = {(c["arm"], c["point"]): (c["learning_rate"], c["sigma"]) for c in tune_configs(part)}
    assert draws == {(c["arm"], c["point"]): (c["learning_rate"], c["sigma"])
                     for c in tune_configs(whole) if c["depth"] in (3, 20)}
    with pytest.raises(HarnessError, match=r"--depths \[7\]: not in the study's model.depths; "
                       r"allowed: some of \[3, 20, 30, 40\]"):
        depth_part(whole, [3, 7], path)


def test_run_depths_flag_prints_the_part_and_refuses_bad_lists(capsys):
    assert main(["run", "search_spaces/smoke.yaml", "--depths", "10", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("study 'smoke-d10': 1 depths × 2 optimizers × 3 seeds")
    assert main(["run", "search_spaces/smoke.yaml", "--depths", "3,x", "--dry-run"]) == 2
    assert "--depths '3,x': allowed: integers separated by commas" in capsys.readouterr().err


def test_dry_run_of_a_packed_study_says_how_its_trials_are_packed(tmp_path, capsys):
    data = yaml.safe_load(Path("search_spaces/smoke.yaml").read_text())
    path = tmp_path / "packed.yaml"
    path.write_text(yaml.safe_dump({**data, "packing": 4}))
    assert main(["run", str(path), "--dry-run"]) == 0
    # per depth, Adam and L-Adam (σ alone differs) × 3 seeds: a pack of 4 and one of 2
    out = capsys.readouterr().out
    assert "packing 4: 12 trials in 4 packs of at most 4 (packing field)" in out
    # the first 3000 MNIST images less 500 for validation, batches of 128: 20 steps × 2 epochs
    assert ("pack step on the CPU: graph mode for 4 packs (jit_compile auto: a dense pack of 8 "
            "on a CPU took 11.55 s in graph mode and 13.7 s under XLA at 54 steps, 35.1 s and "
            "30.8 s at 318: at this trial's 40 steps graph mode is faster)") in out


def test_dry_run_says_which_step_mode_each_pack_takes_and_why(tmp_path, capsys):
    """The trial's steps from the dataset's sizes (no data read): synthetic 3000 examples less a
    tenth for validation = 2700, in batches of 100 = 27 steps per epoch; 2 epochs (54 steps)
    step in graph mode, 6 (162) under XLA (a dense pack of 8 crosses at 142); a GPU compiles."""
    data = yaml.safe_load(Path("search_spaces/smoke.yaml").read_text())
    dataset = {"name": "synthetic", "batch_size": 100, "options": {"train_size": 3000}}

    def dry_run(epochs, **extra):
        path = tmp_path / f"packed{epochs}.yaml"
        path.write_text(yaml.safe_dump({**data, "packing": 6, "dataset": dataset,
                                        "epochs": epochs, **extra}))
        assert main(["run", str(path), "--dry-run"]) == 0
        return [line for line in capsys.readouterr().out.splitlines()
                if line.startswith("pack step")]

    assert dry_run(2) == ["pack step on the CPU: graph mode for 2 packs (jit_compile auto: a "
                          "dense pack of 8 on a CPU took 11.55 s in graph mode and 13.7 s under "
                          "XLA at 54 steps, 35.1 s and 30.8 s at 318: at this trial's 54 steps "
                          "graph mode is faster)"]
    assert dry_run(6)[0].startswith("pack step on the CPU: XLA for 2 packs (")
    assert dry_run(6)[0].endswith("at this trial's 162 steps XLA is faster)")
    assert dry_run(2, resources={"cpu": 1, "gpu": 1}) == [
        "pack step on the GPU: XLA for 2 packs (jit_compile auto on a GPU)"]


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_a_shipped_study_is_resumed_from_its_saved_copy_as_it_was_given(path, tmp_path):
    """`harness run --resume NAME` reads the copy the run saved beside Tune's state: the same
    study (a tuned one too, whose saved defaults must not read as fields it may not set)."""
    from harness.study import saved_space

    spec = load_space(path, build=False)
    saved_space.save(spec, str(tmp_path / spec.name))
    assert saved_space.load(spec.name, str(tmp_path)) == spec
