"""Study files that cannot run as written are refused in seconds, before any model is built."""

from __future__ import annotations

import math
import re
import time
from pathlib import Path

import keras
import pytest
import yaml

from harness.cli import main
from harness.errors import HarnessError
from harness.models import build_model
from harness.study import limits
from harness.study.space import StudySpec

SIZE_CASES = [
    ("dense", 3, (8, 8, 1), 10, {}),
    ("dense", 5, (28, 28, 1), 10, {"width": 17}),
    ("conv_dense", 2, (28, 28, 1), 10, {}),
    ("conv_dense", 1, (32, 32, 3), 100, {"width": 9, "filters": 5}),
    ("highway", 3, (8, 8, 3), 10, {}),
    ("resnet", 8, (32, 32, 3), 10, {}),
    ("resnet", 14, (32, 32, 3), 10, {"shortcut": "projection"}),
    ("resnet", 8, (31, 29, 3), 10, {}),  # odd sizes: strided convs round up
    ("vgg", 8, (32, 32, 3), 100, {}),
    ("densenet", 10, (32, 32, 3), 10, {}),
    ("densenet", 7, (9, 9, 3), 10, {"growth_rate": 5, "initial_filters": 4}),
]


@pytest.mark.parametrize("family, depth, shape, classes, options", SIZE_CASES,
                         ids=[f"{c[0]}{c[1]}-{i}" for i, c in enumerate(SIZE_CASES)])
def test_network_size_matches_the_built_keras_model(family, depth, shape, classes, options):
    model = build_model(family, depth, shape, classes, **options)
    try:
        activations = sum(math.prod(layer.output.shape[1:]) for layer in model.layers)
        longest_path = max(model._operations_by_depth) + 1  # Keras' own layering of the graph
        assert limits.network_size(family, depth, shape, classes, **options) == \
            limits.NetworkSize(model.count_params(), longest_path, activations)
    finally:
        keras.backend.clear_session()


def test_unknown_options_are_left_to_the_model_check():
    assert limits.network_size("dense", 3, (8, 8, 1), 10, depth_multiplier=2) is None


GOOD = {
    "name": "refuse",
    "dataset": {"name": "synthetic"},
    "model": {"family": "dense", "depths": [2]},
    "optimizers": [{"base": "adam", "learning_rate": 0.001}],
    "seeds": 1,
    "epochs": 1,
}
ADAM = {"base": "adam", "learning_rate": 0.001}
TUNED = {"budget": 100_000, "space": {"learning_rate": {"low": 1e-4, "high": 0.1, "log": True}}}

# (case, change to GOOD (None drops a key), part of the message)
REFUSALS = [
    ("depth of a million", {"model": {"family": "dense", "depths": [3, 1_000_000]}},
     "field 'model.depths' (1000000): a dense net of depth 1000000 has 1000003 layers on its "
     "longest path; Keras builds at most 900 (it recurses once per layer); allowed: dense depths "
     "up to 897"),
    ("resnet too deep for Keras", {"dataset": {"name": "cifar10", "batch_size": 1},
                                   "model": {"family": "resnet", "depths": [20, 6 * 60 + 2]}},
     "allowed: resnet depths up to 259"),
    ("parameters beyond memory", {"model": {"family": "dense", "depths": [3],
                                            "options": {"width": 200_000}}},
     "per trial; allowed: at most 1 GiB (HARNESS_TRIAL_MEMORY_GB"),
    ("batch beyond memory", {"dataset": {"name": "cifar10", "batch_size": 10**6},
                             "model": {"family": "resnet", "depths": [8]}},
     "batch 1000000"),
    ("dataset beyond memory", {"dataset": {"name": "synthetic",
                                           "options": {"train_size": 10**10}}},
     "allowed: at most 1 GiB"),
    ("seeds count beyond trials", {"seeds": 10**12},
     "field 'seeds' is 1000000000000; allowed: at most 10000 trials"),
    ("grid beyond trials", {"model": {"family": "dense", "depths": list(range(1, 101))},
                            "seeds": 101},
     "make 10100 trials; allowed: at most 10000"),
    ("tuned budget beyond trials", {"seeds": None, "tuning": TUNED,
                                    "optimizers": [{"base": "adam"}]},
     "('tuning.budget' + screening + 'tuning.final_seeds' with controls) make 100010 trials"),
    ("validation is the whole train split", {"dataset": {"name": "mnist",
                                                         "validation_size": 60000}},
     "field 'dataset.validation_size' is 60000 but the training split has 60000 examples "
     "(the 60000 training examples of mnist); allowed: 0 to 59999"),
    ("validation beyond the limit", {"dataset": {"name": "mnist", "limit": 3000,
                                                 "validation_size": 5000}},
     "has 3000 examples (limit 3000); allowed: 0 to 2999"),
    ("study name outside storage", {"name": ".."},
     "field 'name' is '..', which names a folder outside the storage path"),
    ("optimizer name with a path", {"optimizers": [{**ADAM, "name": "../../x"}]},
     "field 'optimizers.0.name' is '../../x'; it names every trial's folder"),
    ("optimizer name with a quote", {"optimizers": [{**ADAM, "name": "it's"}]},
     "field 'optimizers.0.name'"),
    ("depth listed twice", {"model": {"family": "dense", "depths": [3, 2, 3]}},
     "field 'model.depths' lists [3] twice"),
    ("optimizer listed twice", {"optimizers": [ADAM, {**ADAM, "sigma": 0.01}, ADAM]},
     "field 'optimizers.2' repeats optimizers.0"),
    ("two arms one name", {"optimizers": [ADAM, {**ADAM, "learning_rate": 0.01}]},
     "field 'optimizers.1' has the display name 'Adam' of optimizers.0"),
]


@pytest.fixture
def one_gib(monkeypatch):
    monkeypatch.setenv(limits.MEMORY_ENV, "1")


@pytest.mark.parametrize("case, change, message", REFUSALS, ids=[c[0] for c in REFUSALS])
def test_impossible_files_are_refused_in_seconds(tmp_path, capsys, one_gib, case, change,
                                                 message):
    data = {k: v for k, v in {**GOOD, **change}.items() if v is not None}
    path = tmp_path / "space.yaml"
    path.write_text(yaml.safe_dump(data))
    started = time.perf_counter()
    assert main(["run", str(path), "--dry-run"]) == 2
    assert time.perf_counter() - started < 10
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert str(path) in err
    assert message in err


@pytest.mark.parametrize("text, message", [
    ("name: a\nname: b\n", "field 'name' is given twice (lines 1 and 2); allowed: each key once"),
    ("dataset:\n  name: mnist\n  batch_size: 8\n  batch_size: 9\n",
     "field 'dataset.batch_size' is given twice (lines 3 and 4)"),
    ("optimizers:\n  - {base: adam, learning_rate: 0.1, learning_rate: 0.2}\n",
     "field 'optimizers.0.learning_rate' is given twice"),
], ids=["top level", "nested", "in a list"])
def test_duplicate_yaml_keys_are_refused(tmp_path, capsys, text, message):
    path = tmp_path / "space.yaml"
    path.write_text(text)
    assert main(["run", str(path), "--dry-run"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(path) in err and message in err, err


def _spec(**change) -> StudySpec:
    return StudySpec.model_validate({**GOOD, **change})


@pytest.mark.parametrize("model, allowed_at", [
    ({"family": "dense", "depths": [10**6]}, None),
    ({"family": "highway", "depths": [10**5], "options": {"width": 3000}}, 1.0),
])
def test_the_largest_allowed_depth_is_allowed_and_one_more_is_not(monkeypatch, model,
                                                                   allowed_at):
    if allowed_at:
        monkeypatch.setenv(limits.MEMORY_ENV, str(allowed_at))
    with pytest.raises(HarnessError) as refused:
        limits.check_spec(_spec(model=model), Path("space.yaml"))
    top = int(re.search(r"depths up to (\d+)", str(refused.value)).group(1))
    assert top > 1
    limits.check_spec(_spec(model={**model, "depths": [top]}), Path("space.yaml"))
    with pytest.raises(HarnessError, match=f"\\({top + 1}\\)"):
        limits.check_spec(_spec(model={**model, "depths": [top + 1]}), Path("space.yaml"))


def test_the_deepest_allowed_dense_net_builds():
    """MAX_PATH keeps Keras' recursive graph walk inside Python's recursion limit."""
    top = max(d for d in range(1, 1000)
              if limits.network_size("dense", d, (4, 4, 1), 2).longest_path <= limits.MAX_PATH)
    try:
        assert len(build_model("dense", top, (4, 4, 1), 2).layers) == top + 3
    finally:
        keras.backend.clear_session()


@pytest.mark.parametrize("given", [None, "results", "./results", "../shared/results"])
def test_a_cluster_refuses_a_relative_or_missing_storage_path(given):
    with pytest.raises(HarnessError) as refused:
        limits.check_cluster_storage(given, "space.yaml")
    message = str(refused.value)
    assert message.startswith("space.yaml: field 'storage_path' is ")
    assert "working directory, which Ray deletes after the job" in message
    assert "allowed: s3://BUCKET/PATH, gs://BUCKET/PATH or an absolute path" in message


def test_a_cluster_takes_object_storage_without_asking_ray():
    said = []
    limits.check_cluster_storage("s3://bucket/results", "space.yaml", said.append)
    limits.check_cluster_storage("gs://bucket/results", "space.yaml", said.append)
    assert said == []
