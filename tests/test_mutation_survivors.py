"""Bugs that the fast tier once let through, each planted by hand and now caught here.

- A log range mapped linearly when the arms draw their points (`tuning.arm_points`): every value
  stays inside its range, but most fall in the top decade.
- Trials packed together that differ in more than seed, learning rate, σ and names
  (`packs.MEMBER_FIELDS`): a Layer Langevin trial in a full-Langevin pack, or trials of other
  lengths, would train with member 0's settings and report them as their own. The grouping keeps
  them apart and `pack_trial.check_members` refuses such a pack in one line.
- A final run tagged `phase = tune` by the recorder: its validation scores would pool into the
  chosen point's budget curve.
- A diverged (dropped) member of a pack still updated by the packed step.

No Ray is started: the recorder writes into a real SQLite MLflow store in `tmp_path`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import yaml
from mlflow.tracking import MlflowClient
from study_helpers import REPO, smoke_space
from trainable_helpers import run_trial

from harness.errors import HarnessError
from harness.study.pack_trial import check_members, pack_optimizer_config, train_pack
from harness.study.packs import (
    MEMBER_FIELDS,
    PACK_MEMBERS,
    auto_pack_size,
    pack_configs,
    pack_size,
)
from harness.study.run_schema import (
    RUN_KIND_TRIAL,
    STATUS_FINISHED,
    TAG_ARM,
    TAG_PHASE,
    TAG_TRIAL_KEY,
)
from harness.study.space import parse_space, trial_configs
from harness.study.tracking import MLflowRecorder, ensure_arm_runs
from harness.study.tuning import Choice, arms, choose, final_configs, rounds, tune_configs


@dataclass
class FakeTrial:
    """What the recorder reads of Tune's `Trial` (as in tests/test_tracking.py)."""

    config: dict


SMOKE_TUNED = REPO / "search_spaces" / "smoke_tuned.yaml"
SMOKE_DECIDED = REPO / "search_spaces" / "smoke_decided.yaml"


def tuned_spec(tmp_path: Path, source: Path = SMOKE_TUNED, name: str = "survivors", **tuning):
    """A tuned study file with its `tuning:` block updated by `tuning` (None deletes a key)."""
    data = yaml.safe_load(source.read_text())
    data["name"] = name
    for key, value in tuning.items():
        if value is None:
            data["tuning"].pop(key, None)
        else:
            data["tuning"][key] = value
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data))
    return parse_space(data, path)


# -- log ranges --------------------------------------------------------------------------------

def below(values: list[float], cut: float) -> float:
    return sum(v < cut for v in values) / len(values)


def test_a_log_range_puts_half_the_draws_below_its_geometric_mean(tmp_path):
    """learning rate in [1e-4, 1e-1) and σ in [1e-5, 1e-2), both `log: true`: half of 64 draws
    fall below the geometric mean (a linear mapping puts ~3 % there, ~97 % in the top decade)."""
    spec = tuned_spec(tmp_path, budget=64)
    configs = tune_configs(spec)
    adam, langevin = arms(spec)
    rates = {a.name: [c["learning_rate"] for c in configs if c["arm"] == a.name]
             for a in (adam, langevin)}
    sigmas = [c["sigma"] for c in configs if c["arm"] == langevin.name]
    for values in (*rates.values(), sigmas):
        assert len(values) == 64
    for values in rates.values():
        assert all(1e-4 <= v < 1e-1 for v in values)
        assert 0.4 <= below(values, math.sqrt(1e-4 * 1e-1)) <= 0.6
        assert 0.2 <= below(values, 10 ** -3.25) <= 0.3  # a quarter of the decades
        assert 0.7 <= below(values, 10 ** -1.75) <= 0.8  # three quarters of them
    assert all(1e-5 <= s < 1e-2 for s in sigmas)
    assert 0.4 <= below(sigmas, math.sqrt(1e-5 * 1e-2)) <= 0.6


def test_drawn_values_become_the_trials_rates_not_extra_hyper_parameters(tmp_path):
    """learning rate and σ go to the config's own fields; `hyper` (passed to the optimizer as
    keyword arguments beside them) must not repeat them."""
    configs = tune_configs(tuned_spec(tmp_path))
    assert len({c["learning_rate"] for c in configs}) == len(configs) // 2
    assert all(not {"learning_rate", "sigma"} & set(c["hyper"]) for c in configs)


def test_a_study_tuned_on_the_validation_loss_chooses_the_lowest(tmp_path):
    """mode: min with score_epoch: best scores each trial by its lowest loss and chooses the
    lowest score (point 1, 0.2); scoring by the highest loss would choose point 2."""
    spec = tuned_spec(tmp_path, metric="val_loss", mode="min", score_epoch="best")
    configs = tune_configs(spec)
    losses = {0: [0.9, 0.5, 0.7], 1: [0.8, 0.6, 0.2], 2: [0.4, 0.45, 0.5], 3: [1.0, 0.3, 0.3]}
    outcomes = {c["trial_key"]: (STATUS_FINISHED, losses[c["point"]]) for c in configs}
    choices = choose(spec, outcomes, configs)
    assert len(choices) == 2
    assert all(c.point == 1 and c.score == 0.2 for c in choices.values())


def test_a_linear_range_puts_half_the_draws_below_its_midpoint(tmp_path):
    """The reverse mistake: `log: false` drawn in log space would put ~74 % below 0.055."""
    spec = tuned_spec(tmp_path, budget=64,
                      space={"learning_rate": {"low": 0.01, "high": 0.1, "log": False},
                             "sigma": {"low": 1e-5, "high": 1e-2, "log": True}})
    rates = [c["learning_rate"] for c in tune_configs(spec)]
    assert 0.4 <= below(rates, 0.055) <= 0.6


def test_noise_only_draws_sigma_on_its_log_range(tmp_path):
    """σ searched alone at the plain twin's learning rate uses the log mapping too."""
    spec = tuned_spec(tmp_path, SMOKE_DECIDED, budget=64, langevin="noise_only",
                      matched_lr_controls=None)
    plain, noisy = rounds(spec)
    chosen = {plain[0].name: Choice(plain[0].name, 0, 0.9, {"learning_rate": 0.003}, "k")}
    sigmas = [c["sigma"] for c in tune_configs(spec, noisy, chosen)]
    low, high = spec.tuning.ranges("adam")["sigma"].low, spec.tuning.ranges("adam")["sigma"].high
    assert spec.tuning.ranges("adam")["sigma"].log and len(sigmas) == 64
    assert 0.4 <= below(sigmas, math.sqrt(low * high)) <= 0.6


# -- what may differ within a pack -------------------------------------------------------------

def noisy_trials(tmp_path: Path, optimizers: list[dict], **overrides) -> list[dict]:
    _, spec = smoke_space(tmp_path, seeds=[0, 1, 2], model={"family": "dense", "depths": [2]},
                          optimizers=optimizers, **overrides)
    return trial_configs(spec)


FULL_AND_LAYER = [{"base": "adam", "learning_rate": 1e-3, "sigma": 1e-3},
                  {"base": "adam", "learning_rate": 1e-3, "sigma": 1e-3, "layer_fraction": 0.3}]


def test_layer_langevin_trials_are_never_packed_with_full_langevin_ones(tmp_path):
    configs = noisy_trials(tmp_path, FULL_AND_LAYER)
    packs = pack_configs(configs, 8)
    assert sorted(len(p[PACK_MEMBERS]) for p in packs) == [3, 3]
    for pack in packs:
        assert len({m["layer_fraction"] for m in pack[PACK_MEMBERS]}) == 1
        check_members(pack[PACK_MEMBERS])
    assert {p[PACK_MEMBERS][0]["layer_fraction"] for p in packs} == {1.0, 0.3}


def test_trials_of_other_lengths_are_never_packed_together(tmp_path):
    configs = noisy_trials(tmp_path, FULL_AND_LAYER[:1])
    configs = [{**c, "epochs": 2 + i % 2} for i, c in enumerate(configs)]  # 2, 3, 2
    packs = pack_configs(configs, 8)
    assert sorted(len(p[PACK_MEMBERS]) for p in packs) == [1, 2]
    for pack in packs:
        assert len({m["epochs"] for m in pack[PACK_MEMBERS]}) == 1


def test_the_pack_size_is_the_studys_packing_field(tmp_path):
    """1 without `packing`, K as given, and `auto` as `auto_pack_size` decides for the trials."""
    unpacked = noisy_trials(tmp_path, FULL_AND_LAYER[:1])
    _, spec = smoke_space(tmp_path, seeds=[0, 1, 2], model={"family": "dense", "depths": [2]},
                          optimizers=FULL_AND_LAYER[:1])
    assert pack_size(spec, unpacked) == (1, "packing off")
    _, spec = smoke_space(tmp_path, packing=3)
    assert pack_size(spec, unpacked) == (3, "packing field")
    _, spec = smoke_space(tmp_path, seeds=[0, 1, 2], packing="auto",
                          model={"family": "dense", "depths": [2]},
                          optimizers=FULL_AND_LAYER[:1])
    assert pack_size(spec, unpacked) == auto_pack_size(spec, unpacked)
    assert pack_size(spec, unpacked[:2]) == auto_pack_size(spec, unpacked[:2])


@pytest.mark.parametrize("field, value", [
    ("layer_fraction", 0.3), ("epochs", 7), ("depth", 3), ("hyper", {"beta_1": 0.5}),
    ("sigma_schedule", {"name": "off_after", "epoch": 1}), ("base_optimizer", "rmsprop"),
])
def test_a_pack_of_members_that_differ_in_more_is_refused_naming_the_field(tmp_path, field,
                                                                           value):
    first, second, third = noisy_trials(tmp_path, FULL_AND_LAYER[:1])
    check_members([first, second, third])  # seeds differ: fine
    with pytest.raises(HarnessError, match=f"'{field}' differs") as error:
        check_members([first, second, {**third, field: value}])
    assert "\n" not in str(error.value) and third["trial_key"] in str(error.value)
    with pytest.raises(HarnessError, match=f"'{field}' differs"):
        check_members([first, {k: v for k, v in second.items() if k != field}])


def test_members_may_differ_in_seed_rate_sigma_and_names_only(tmp_path):
    first, second = noisy_trials(tmp_path, FULL_AND_LAYER[:1])[:2]
    renamed = {**second, "learning_rate": 0.5, "sigma": 0.0, "optimizer": "Adam",
               "variant": "baseline", "arm": "x", "point": 3, "stage": "screen",
               "control": "sigma0", "control_of": "y"}
    assert set(renamed) - set(first) <= set(MEMBER_FIELDS)
    check_members([first, renamed])


def test_a_quiet_member_may_differ_in_the_noise_fields_and_the_pack_takes_the_noisy_ones(
        tmp_path):
    """A member with σ = 0 has no noise to shape: its σ schedule and layer fraction may differ
    from the noisy members', whose own the pack trains with, even with the quiet one first."""
    first, second, third = noisy_trials(tmp_path, FULL_AND_LAYER[1:])  # Layer Langevin, 0.3
    schedule = {"name": "off_after", "epoch": 1}
    second, third = ({**c, "sigma_schedule": schedule} for c in (second, third))
    quiet = {**first, "sigma": 0.0, "layer_fraction": 1.0, "sigma_schedule": None}
    check_members([quiet, second, third])
    config = pack_optimizer_config([quiet, second, third])
    assert (config["sigma_schedule"], config["layer_fraction"]) == (schedule, 0.3)
    assert config["sigma"] == [0.0, second["sigma"], third["sigma"]]
    quiet_only = pack_optimizer_config([quiet, {**quiet, "seed": 5}])
    assert (quiet_only["sigma_schedule"], quiet_only["layer_fraction"]) == (None, 1.0)
    for field, value in (("sigma_schedule", None), ("layer_fraction", 1.0)):
        with pytest.raises(HarnessError, match=f"'{field}' differs") as error:
            check_members([quiet, second, {**third, field: value}])
        assert third["trial_key"] in str(error.value) and "\n" not in str(error.value)
    with pytest.raises(HarnessError, match="'epochs' differs"):
        check_members([second, {**quiet, "epochs": 9}])


def test_train_pack_refuses_a_mixed_pack_before_it_trains(tmp_path):
    """What a grouping that ignored `layer_fraction` would hand it: the check does not rely on
    the grouping."""
    configs = noisy_trials(tmp_path, FULL_AND_LAYER)  # 3 full Langevin, then 3 Layer Langevin
    mixed = {"trial_key": "pack-mixed", PACK_MEMBERS: configs[:2] + configs[3:4]}
    with pytest.raises(HarnessError, match="'layer_fraction' differs \\(1.0 vs 0.3\\)"):
        train_pack({"trial": mixed})


def test_a_packed_tuning_trial_ends_finished_without_test_metrics(worker, workdir):
    """A tuning trial never touches the test split: packed (in a Ray worker, as under Tune) its
    members' last epoch says finished and carries no test metric; the same pack outside tuning
    reports them."""
    trials = noisy_trials(workdir, FULL_AND_LAYER[:1])[:2]
    for phase, attempt in (("tune", "tunepack"), (None, "finalpack")):
        configs = [{**c, "phase": phase} if phase else c for c in trials]
        (pack,) = pack_configs(configs, 2)
        last = run_trial(worker, pack, workdir, attempt).results[-1]
        assert last["epoch"] == configs[0]["epochs"] == 2
        for config in configs:
            reported = last[PACK_MEMBERS][config["trial_key"]]
            assert reported["status"] == "finished"
            assert ("test_accuracy" in reported) is (phase is None)


# -- the recorder's phase tag ------------------------------------------------------------------

def test_final_runs_are_tagged_final_and_tuning_runs_tune(tmp_path):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    spec = tuned_spec(tmp_path, name="phases", final_seeds=2)
    ensure_arm_runs(uri, spec)
    tuning = tune_configs(spec)
    choices = {a.name: Choice(a.name, 1, 0.9, {k: v for k, v in tuning[1].items()
                                                 if k in ("learning_rate", "sigma")}, "k")
               for a in arms(spec)}
    finals = final_configs(spec, choices)
    recorder = MLflowRecorder(uri, spec.experiment_name, spec.name)
    for config in (tuning[0], *finals):
        recorder.on_trial_start(0, [], FakeTrial({"trial": config}))
    recorder.flush()  # the hooks only queue the writes
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name(spec.experiment_name)
    runs = client.search_runs([experiment.experiment_id], f"tags.run_kind = '{RUN_KIND_TRIAL}'")
    phase = {r.data.tags[TAG_TRIAL_KEY]: r.data.tags[TAG_PHASE] for r in runs}
    assert len(finals) == 4 and len(phase) == 5
    assert phase.pop(tuning[0]["trial_key"]) == "tune"
    assert phase == {c["trial_key"]: "final" for c in finals}
    assert {r.data.tags[TAG_ARM] for r in runs} == {a.name for a in arms(spec)}


# -- the packed trainer ------------------------------------------------------------------------

def packed_pair(rate: float):
    """Two dense-2 members (seeds 0 and 1) packed, with a packed SGD at `rate` (σ = 0)."""
    import keras

    from harness.models import build_model
    from harness.optimizers import LSGD
    from harness.optimizers.schedules import from_spec
    from harness.packing.model import build_packed, load_members
    from harness.packing.train import PackedTrainer

    own = []
    for seed in (0, 1):
        keras.utils.set_random_seed(seed)
        own.append(build_model("dense", 2, (8, 8, 1), 10, width=16))
    packed = build_packed("dense", 2, (8, 8, 1), 10, 2, width=16)
    load_members(packed, own)
    optimizer = LSGD(learning_rate=from_spec([rate, rate], None, 1), sigma=0.0, seed=[0, 1])
    return own, packed, PackedTrainer(packed, optimizer)


def test_a_packed_epoch_reports_each_members_mean_loss_and_accuracy_over_its_examples():
    """Member k's loss and accuracy are the means over its own examples, batches of 32 and 8
    zipped side by side (`zip_members`), in training and in evaluation (a rate of 1e-12 moves no
    float32 weight)."""
    import tensorflow as tf

    from harness.packing.train import zip_members

    own, _, trainer = packed_pair(1e-12)
    rng = np.random.default_rng(3)
    data = [(rng.normal(size=(40, 8, 8, 1)).astype("float32"),
             rng.integers(0, 10, size=40).astype("int64")) for _ in own]
    expected = []
    for model, (x, y) in zip(own, data, strict=True):
        logits = model(x).numpy().astype(np.float64)
        logits -= logits.max(axis=1, keepdims=True)
        log_p = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
        expected.append((-log_p[np.arange(40), y].mean(), (logits.argmax(axis=1) == y).mean()))
    expected_loss, expected_accuracy = map(np.array, zip(*expected, strict=True))
    assert 0 < expected_accuracy.min() and expected_accuracy.max() < 1  # not all one way

    def zipped():
        return zip_members([tf.data.Dataset.from_tensor_slices(d).batch(32) for d in data])

    for loss, accuracy in (trainer.evaluate(zipped()), trainer.fit_epoch(zipped())):
        assert loss.shape == accuracy.shape == (2,)
        np.testing.assert_allclose(loss, expected_loss, rtol=1e-5)
        np.testing.assert_allclose(accuracy, expected_accuracy)


# -- a diverged member of a pack ---------------------------------------------------------------

def test_a_dropped_member_is_no_longer_updated_and_the_others_are():
    """Both members train on finite losses; after `drop(1)` (what `train_pack` does when a member
    diverges) member 1's weights stay as they were while member 0's move."""
    _, packed, trainer = packed_pair(0.05)
    rng = np.random.default_rng(0)
    batch = (rng.normal(size=(32, 2, 8, 8, 1)).astype("float32"),
             rng.integers(0, 10, size=(32, 2)).astype("int64"))

    def member(k):
        return [w.numpy()[k].copy() for w in packed.weights]

    trainer.fit_epoch([batch])
    before = member(0), member(1)
    trainer.drop(1)
    loss, _ = trainer.fit_epoch([batch])
    assert np.isfinite(loss).all()
    for old, new in zip(before[1], member(1), strict=True):
        np.testing.assert_array_equal(new, old)
    assert all(not np.array_equal(old, new) for old, new in zip(before[0], member(0),
                                                                  strict=True))
