"""Packed trials: K trials trained as one model report what each reports alone.

Fast tests of the pieces (grouping, the packed model, the trainer, the study field) and, in a Ray
worker through Ray's own function-trainable wrapper (`trainable_helpers`), the equivalence of a
pack with its members run one by one, its restore, and a member that diverges.
"""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import keras
import numpy as np
import pytest
from study_helpers import TINY_DATA, epoch_steps, smoke_space, trial_runs
from trainable_helpers import FakeTrial, run_trial

from harness.errors import HarnessError
from harness.packing.model import build_packed, load_members
from harness.packing.train import PackedTrainer
from harness.study.packs import (
    PACK_MEMBERS,
    auto_pack_size,
    cpu_pack_cap,
    largest_group,
    member_results,
    pack_configs,
)
from harness.study.run_schema import EPOCH_METRICS, FINAL_METRICS
from harness.study.space import trial_configs
from harness.study.tracking import MLflowRecorder

COMPARED = ("train_loss", "train_accuracy", "val_loss", "val_accuracy")
# packed and unpacked sum the same products in another order (einsum vs Dense matmul): float32
# rounding, amplified a little by training; a wrong seed, order or rate moves losses by > 1e-2
TOLERANCE = dict(rel=1e-4, abs=1e-5)


def members(tmp_path: Path, name: str, optimizers: list[dict], seeds=(0, 1, 2), epochs=3,
            model=None, **overrides) -> list[dict]:
    _, spec = smoke_space(tmp_path, name=name, seeds=list(seeds), epochs=epochs,
                          model=model or {"family": "dense", "depths": [2]},
                          optimizers=optimizers, **overrides)
    return trial_configs(spec)


# -- grouping ----------------------------------------------------------------------------------

def test_packs_group_only_trials_that_differ_in_seed_rate_and_sigma(tmp_path):
    _, spec = smoke_space(tmp_path, seeds=[0, 1, 2], model={"family": "dense", "depths": [2, 3]},
                          optimizers=[{"base": "adam", "learning_rate": 1e-3},
                                      {"base": "adam", "learning_rate": 1e-3, "sigma": 1e-3},
                                      {"base": "adam", "learning_rate": 1e-3, "sigma": 1e-3,
                                       "name": "L-Adam-off1",
                                       "sigma_schedule": {"name": "off_after", "epoch": 1}},
                                      {"base": "rmsprop", "learning_rate": 1e-3}])
    configs = trial_configs(spec)
    packs = pack_configs(configs, 4)
    packed = [m for p in packs for m in p[PACK_MEMBERS]]
    assert sorted(c["trial_key"] for c in packed) == sorted(c["trial_key"] for c in configs)
    for pack in packs:
        group = pack[PACK_MEMBERS]
        assert 1 <= len(group) <= 4
        assert len({(m["depth"], m["base_optimizer"]) for m in group}) == 1
        # one σ schedule per pack among its noisy members
        assert len({str(m["sigma_schedule"]) for m in group if m["sigma"] > 0}) <= 1
        assert [configs.index(m) for m in group] == sorted(configs.index(m) for m in group)
    # per depth: Adam + L-Adam (6 trials, σ alone differs) → 4 + 2; scheduled L-Adam 3; RMSprop 3
    assert sorted(len(p[PACK_MEMBERS]) for p in packs) == sorted([4, 2, 3, 3] * 2)
    assert len({p["trial_key"] for p in packs}) == len(packs)


def test_a_plain_arm_packs_with_its_scheduled_twin_and_not_with_layer_langevin(tmp_path):
    """The decided studies' arms: plain Adam has no σ schedule, its twin σ off after epoch 1 and
    the Layer Langevin twin another fraction. The plain trials (σ = 0) share a pack with either;
    the two noisy arms never share one."""
    plain = {"base": "adam", "learning_rate": 1e-3,
             "lr_schedule": {"name": "piecewise", "epoch": 1, "factor": 0.1}}
    twin = {**plain, "sigma": 1e-3, "sigma_schedule": {"name": "off_after", "epoch": 1}}
    _, spec = smoke_space(tmp_path, seeds=[0, 1, 2, 3], model={"family": "dense", "depths": [2]},
                          optimizers=[plain, twin, {**twin, "layer_fraction": 0.3}])
    configs = trial_configs(spec)
    packs = [p[PACK_MEMBERS] for p in pack_configs(configs, 8)]
    assert [[m["optimizer"] for m in pack] for pack in packs] == [
        ["Adam"] * 4 + ["L-Adam"] * 4, ["LL-Adam"] * 4]
    assert largest_group(configs) == 8
    packs = [p[PACK_MEMBERS] for p in pack_configs(configs, 6)]
    assert [[m["optimizer"] for m in pack] for pack in packs] == [
        ["Adam"] * 4 + ["L-Adam"] * 2, ["L-Adam"] * 2, ["LL-Adam"] * 4]


def test_a_pack_result_is_read_back_per_member(tmp_path):
    group = members(tmp_path, "view", [{"base": "adam", "learning_rate": 1e-3}])
    (pack,) = pack_configs(group, 3)
    result = {"epoch": 2, PACK_MEMBERS: {group[2]["trial_key"]: {"epoch": 2, "val_accuracy": 0.5},
                                         group[0]["trial_key"]: {"epoch": 2, "val_accuracy": 0.7}}}
    assert member_results(pack, result) == [(group[0], {"epoch": 2, "val_accuracy": 0.7}),
                                            (group[2], {"epoch": 2, "val_accuracy": 0.5})]
    assert member_results(group[1], {"epoch": 1}) == [(group[1], {"epoch": 1})]


def test_auto_packing_takes_the_group_the_cpu_cap_and_the_memory(tmp_path, monkeypatch):
    from harness.packing import cpu_seconds

    _, spec = smoke_space(tmp_path, seeds=list(range(20)), packing="auto",
                          model={"family": "dense", "depths": [2]},
                          optimizers=[{"base": "adam", "learning_rate": 1e-3}])
    configs = trial_configs(spec)
    k, why = auto_pack_size(spec, configs)
    assert k == 16 and "at most 16 on CPU" in why and "steps train fastest in packs of 16 on a CPU" in why
    assert auto_pack_size(spec, configs[:5])[0] == 5
    # where packs of 8 train the most trials per hour, 8 is the cap
    monkeypatch.setitem(cpu_seconds.CPU_SECONDS, "dense", {
        1: {"graph": (5.0, 7.0)}, 8: {"graph": (6.0, 9.0)}, 16: {"graph": (30.0, 60.0)}})
    assert auto_pack_size(spec, configs)[0] == 8
    monkeypatch.setenv("HARNESS_TRIAL_MEMORY_GB", str(3 * 9000 * 4 / 2**30))  # ~3 members' worth
    assert 1 <= auto_pack_size(spec, configs)[0] < 8


def test_the_cpu_pack_size_follows_the_trial_length():
    """Trials per hour = 3600 K / t_K(steps) on the line through the two measured lengths, each
    pack in its step mode: a dense pack of 16 at 318 steps under XLA (48.9 s) gives
    3600 · 16 / 48.9 = 1178, the unpacked trial 3600 / 7.20 = 500; a study's conv + dense trial
    (10 epochs of MNIST, 1060 steps) trains fastest unpacked, a short one in packs."""
    k, why = cpu_pack_cap("dense", 318)
    assert k == 16 and "16: 1178" in why and "unpacked: 500" in why
    assert cpu_pack_cap("dense", 318, jit_compile=False)[1].count("16: 938") == 1  # graph: 61.4 s
    assert cpu_pack_cap("conv_dense", 1060)[0] == 1
    assert cpu_pack_cap("conv_dense", 1060)[1].startswith(
        "conv_dense trials of 1060 steps train fastest unpacked on a CPU")
    assert cpu_pack_cap("conv_dense", 54)[0] > 1
    assert cpu_pack_cap("resnet", 1060) == (
        1, "no CPU measurement of resnet trials (benchmarks/packing.py)")


def test_auto_packing_stays_unpacked_where_packs_do_not_pay(tmp_path, monkeypatch):
    from harness.packing import cpu_seconds

    _, spec = smoke_space(tmp_path, seeds=list(range(12)), packing="auto",
                          model={"family": "dense", "depths": [2]},
                          optimizers=[{"base": "adam", "learning_rate": 1e-3}])
    monkeypatch.setitem(cpu_seconds.CPU_SECONDS, "dense", {
        1: {"graph": (1.0, 2.0)}, 8: {"graph": (9.0, 17.0)}, 16: {"graph": (18.0, 34.0)}})
    k, why = auto_pack_size(spec, trial_configs(spec))
    assert k == 1 and "train fastest unpacked on a CPU" in why


@pytest.mark.parametrize("field, value, message", [
    ("packing", 0, "field 'packing': .*allowed: an integer >= 1, or auto"),
    ("packing", "many", "field 'packing': .*allowed: an integer >= 1, or auto"),
    ("mixed_precision", True, "packs train in float32; allowed: mixed_precision: false"),
    ("model", {"family": "resnet", "depths": [8]},
     r"cannot be packed \(its BatchNormalization layers and shortcut additions have no packed "
     r"layer\); allowed families: dense, conv_dense, highway"),
    ("resources", {"cpu": 1, "gpu": 2}, "one device; allowed: resources.gpu <= 1"),
])
def test_a_packing_the_harness_cannot_do_is_refused_in_one_line(tmp_path, field, value, message):
    overrides = {"packing": 4, field: value}
    with pytest.raises(HarnessError, match=message) as error:
        smoke_space(tmp_path, **overrides)
    assert "\n" not in str(error.value)


# -- the packed model and trainer ---------------------------------------------------------------

def _member_models(seeds, depth=2, shape=(8, 8, 1)):
    from harness.models import build_model

    models = []
    for seed in seeds:
        keras.utils.set_random_seed(seed)
        models.append(build_model("dense", depth, shape, 10, width=16))
    return models


def test_a_packed_model_computes_each_members_own_network():
    own = _member_models([0, 1, 2])
    packed = build_packed("dense", 2, (8, 8, 1), 10, 3, width=16)
    load_members(packed, own)
    x = np.random.default_rng(0).normal(size=(5, 3, 8, 8, 1)).astype("float32")
    logits = packed(x).numpy()
    for k, model in enumerate(own):
        np.testing.assert_allclose(logits[:, k], model(x[:, k]).numpy(), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="2 member models for a pack of 3"):
        load_members(packed, own[:2])
    with pytest.raises(ValueError, match="cannot be packed; allowed: dense, conv_dense, highway"):
        build_packed("resnet", 20, (8, 8, 1), 10, 2)


def test_a_diverging_member_is_masked_and_the_others_train_as_alone():
    """Member 1 (SGD at γ = 1e12) turns NaN in its first step; member 0 trains exactly as the
    same member packed alone, and dropping member 1 keeps it so."""
    from harness.optimizers import LSGD
    from harness.optimizers.schedules import from_spec

    rng = np.random.default_rng(1)
    x = rng.normal(size=(4, 32, 8, 8, 1)).astype("float32")
    y = rng.integers(0, 10, size=(4, 32)).astype("int64")

    def train(rates, steps_x, steps_y, drop_after=None):
        packed = build_packed("dense", 2, (8, 8, 1), 10, len(rates), width=16)
        load_members(packed, _member_models([0, 1][:len(rates)]))
        optimizer = LSGD(learning_rate=from_spec(list(rates), None, 1), sigma=0.0,
                         seed=list(range(len(rates))))
        trainer = PackedTrainer(packed, optimizer)
        losses = []
        for step, (xb, yb) in enumerate(zip(steps_x, steps_y, strict=True)):
            losses.append(trainer.fit_epoch([(xb, yb)])[0])
            if drop_after is not None and step == drop_after:
                trainer.drop(1)
        return np.array(losses)

    pair_x, pair_y = np.stack([x, x], axis=2), np.stack([y, y], axis=2)  # [step, B, K, ...]
    both = train([0.05, 1e12], pair_x, pair_y)
    alone = train([0.05], x[:, :, None], y[:, :, None])
    assert not np.isfinite(both[2:, 1]).any()  # member 1 diverged
    np.testing.assert_allclose(both[:, 0], alone[:, 0], rtol=1e-5)
    dropped = train([0.05, 1e12], pair_x, pair_y, drop_after=0)
    np.testing.assert_allclose(dropped[:, 0], alone[:, 0], rtol=1e-5)


def test_a_member_trains_bit_for_bit_alike_whatever_its_partners_in_a_pack_of_one_size():
    """A trial's numbers are a function of its config, its seed and its pack's size: member 0
    (Langevin Adam, its own noise seed) with another partner, another learning rate and σ gives
    the same losses to the last bit (a pack-wide noise draw, or any mixing across members,
    would not)."""
    from harness.optimizers import LAdam
    from harness.optimizers.schedules import from_spec

    rng = np.random.default_rng(2)
    x = rng.normal(size=(4, 32, 2, 8, 8, 1)).astype("float32")  # [step, B, K, ...]
    y = rng.integers(0, 10, size=(4, 32, 2)).astype("int64")

    def member_zero(partner: int, rate: float, sigma: float):
        packed = build_packed("dense", 2, (8, 8, 1), 10, 2, width=16)
        load_members(packed, _member_models([0, partner]))
        optimizer = LAdam(learning_rate=from_spec([1e-2, rate], None, 1),
                          sigma=from_spec([1e-2, sigma], None, 1), seed=[0, partner])
        trainer = PackedTrainer(packed, optimizer)
        losses = [trainer.fit_epoch([(xb, yb)])[0][0] for xb, yb in zip(x, y, strict=True)]
        return np.array(losses), packed.trainable_variables[0].numpy()[0]

    losses, kernel = member_zero(1, 1e-3, 0.0)
    other_losses, other_kernel = member_zero(5, 3e-2, 1e-1)
    np.testing.assert_array_equal(losses, other_losses)
    np.testing.assert_array_equal(kernel, other_kernel)


# -- a pack against its members alone, in a Ray worker -------------------------------------------

def _varied(configs: list[dict], rates, sigmas) -> list[dict]:
    """The configs with their own learning rates and σ (as tuning draws them)."""
    return [{**c, "learning_rate": lr, "sigma": sigma} for c, lr, sigma
            in zip(configs, rates, sigmas, strict=True)]


@pytest.fixture(scope="module")
def langevin_pack(worker, workdir):
    """Member 0 a plain Adam trial (σ 0, no σ schedule), members 1 and 2 its Langevin twins (σ
    off after epoch 2): the pack must give the twins their own schedule, not member 0's."""
    group = _varied(members(workdir, "lpack", [{
        "base": "adam", "learning_rate": 1e-3, "sigma": 1e-3,
        "lr_schedule": {"name": "piecewise", "epoch": 2, "factor": 0.1},
        "sigma_schedule": {"name": "off_after", "epoch": 2}}]),
        rates=[3e-3, 1e-3, 1e-2], sigmas=[0.0, 1e-3, 3e-2])
    group[0] = {**group[0], "sigma_schedule": None, "optimizer": "Adam", "variant": "baseline"}
    (pack,) = pack_configs(group, 3)
    return group, pack, run_trial(worker, pack, workdir, "lpack")


@pytest.mark.parametrize("optimizer", ["adam", "langevin_adam", "rmsprop"])
def test_a_pack_reports_what_its_trials_report_alone(optimizer, worker, workdir, langevin_pack):
    """Same seeds, learning rates and σ: every member's epochs and test metrics are its own
    trial's (its initialisation, data order, schedules and Langevin noise)."""
    if optimizer == "langevin_adam":
        group, pack, packed = langevin_pack
    else:
        group = _varied(members(workdir, optimizer, [{"base": optimizer, "learning_rate": 1e-3}]),
                        rates=[1e-3, 3e-3, 1e-2], sigmas=[0.0] * 3)
        (pack,) = pack_configs(group, 3)
        packed = run_trial(worker, pack, workdir, f"pack-{optimizer}")
    assert_reported_alone(worker, workdir, group, packed)


def assert_reported_alone(worker, workdir: Path, group: list[dict], packed) -> None:
    """Every member of the pack that reported `packed` (3 epochs) reported, epoch by epoch and
    at its end, what its trial reports run alone."""
    assert packed.epochs == [1, 2, 3]
    for member in group:
        alone = run_trial(worker, member, workdir, member["trial_key"]).results
        ours = [r[PACK_MEMBERS][member["trial_key"]] for r in packed.results]
        assert [r["epoch"] for r in ours] == [1, 2, 3]
        for metric in COMPARED:
            assert [r[metric] for r in ours] == pytest.approx([r[metric] for r in alone],
                                                              **TOLERANCE), metric
        for metric in FINAL_METRICS:
            assert ours[-1][metric] == pytest.approx(alone[-1][metric], **TOLERANCE), metric
        assert ours[-1]["status"] == alone[-1]["status"] == "finished"
        assert ours[0]["resumed_from_epoch"] == 0


def test_a_restored_pack_continues_every_member_from_its_checkpoint(worker, workdir,
                                                                    langevin_pack):
    assert_restores_per_member(worker, workdir, *langevin_pack)


def assert_restores_per_member(worker, workdir: Path, group: list[dict], pack: dict,
                               whole) -> None:
    """The pack restored from its first checkpoint reports epochs 2 and 3 of every member as
    the pack `whole` run through did."""
    restored = run_trial(worker, pack, workdir, f"{pack['trial_key']}-restored",
                         restore=whole.checkpoints[0])
    assert restored.epochs == [2, 3]
    for member in group:
        key = member["trial_key"]
        assert restored.results[0][PACK_MEMBERS][key]["resumed_from_epoch"] == 1
        for metric in COMPARED:
            assert [r[PACK_MEMBERS][key][metric] for r in restored.results] == pytest.approx(
                [r[PACK_MEMBERS][key][metric] for r in whole.results[1:]], rel=1e-6), metric
        for metric in FINAL_METRICS:
            assert restored.results[-1][PACK_MEMBERS][key][metric] == pytest.approx(
                whole.results[-1][PACK_MEMBERS][key][metric], rel=1e-6), metric


def _record(recorder: MLflowRecorder, pack: dict, results: list[dict], complete=True) -> None:
    trial = FakeTrial({"trial": pack})
    recorder.on_trial_start(0, [], trial)
    for result in results:
        recorder.on_trial_result(0, [], trial, result)
    if complete:
        recorder.on_trial_complete(0, [], trial)
    recorder.flush()  # the hooks only queue the writes


def diverging_pack(worker, workdir: Path, name: str, **overrides) -> tuple[list[dict], dict,
                                                                           object]:
    """A pack of two SGD members, seeds 0 and 1, at γ = 1e-2 (calm) and 1e12 (wild), run in the
    worker: the wild one reports `diverged` with epoch 1 and nothing after, the calm one every
    epoch what it reports alone. (members, pack, what it reported)"""
    group = _varied(members(workdir, name, [{"base": "sgd", "learning_rate": 1e-2}],
                            seeds=(0, 1), **overrides), rates=[1e-2, 1e12], sigmas=[0.0, 0.0])
    (pack,) = pack_configs(group, 2)
    reported = run_trial(worker, pack, workdir, name)
    calm, wild = (m["trial_key"] for m in group)
    assert reported.epochs == [1, 2, 3]
    assert reported.results[0][PACK_MEMBERS][wild]["status"] == "diverged"
    assert math.isnan(reported.results[0][PACK_MEMBERS][wild]["train_loss"])
    assert all(wild not in r[PACK_MEMBERS] for r in reported.results[1:])
    alone = run_trial(worker, group[0], workdir, f"{name}-calm").results
    for metric in COMPARED:
        assert [r[PACK_MEMBERS][calm][metric] for r in reported.results] == pytest.approx(
            [r[metric] for r in alone], **TOLERANCE), metric
    assert reported.results[-1][PACK_MEMBERS][calm]["status"] == "finished"
    return group, pack, reported


def test_a_diverged_member_ends_alone_and_its_run_says_so(worker, workdir):
    group, pack, reported = diverging_pack(worker, workdir, "nanpack")
    calm, wild = (m["trial_key"] for m in group)
    uri = f"sqlite:///{workdir}/nanpack.db"
    experiment = group[0]["experiment"]
    _record(MLflowRecorder(uri, experiment, group[0]["study"]), pack, reported.results)
    runs = {r.data.tags["trial_key"]: r for r in trial_runs(uri, experiment)}
    assert runs[wild].data.tags["status"] == "diverged" and runs[calm].data.tags["status"] == \
        "finished"
    for key, run in runs.items():
        assert run.info.status == "FINISHED"
        assert run.data.tags["pack"] == pack["trial_key"] and run.data.tags["pack_size"] == "2"
        # how the pack stepped: a short dense pack on a CPU runs in graph mode, and says why
        assert run.data.tags["pack_step"].startswith("graph: jit_compile auto: a dense pack of 8"), \
            run.data.tags["pack_step"]
        assert run.data.params["seed"] == str(next(m["seed"] for m in group if
                                                   m["trial_key"] == key))
    assert epoch_steps(uri, runs[wild].info.run_id)["train_loss"] == [1]
    assert epoch_steps(uri, runs[calm].info.run_id) == {m: [1, 2, 3] for m in EPOCH_METRICS}
    # a later driver re-reporting the pack (resumed from an older checkpoint) reopens nothing
    # that ended and logs no epoch twice
    _record(MLflowRecorder(uri, experiment, group[0]["study"]), pack, reported.results,
            complete=False)
    again = {r.data.tags["trial_key"]: r for r in trial_runs(uri, experiment)}
    assert {k: (r.info.status, r.info.end_time) for k, r in again.items()} == {
        k: (r.info.status, r.info.end_time) for k, r in runs.items()}
    assert epoch_steps(uri, again[calm].info.run_id) == {m: [1, 2, 3] for m in EPOCH_METRICS}


def test_tiny_data_is_what_the_pack_tests_assume():
    """240 training images of 8x8 (guards the tolerance above: tiny nets, few steps)."""
    assert TINY_DATA["options"]["train_size"] - TINY_DATA["validation_size"] == 240
    assert list(itertools.chain(TINY_DATA["options"]["shape"])) == [8, 8, 1]
