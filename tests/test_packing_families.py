"""Packed conv + dense and highway nets: what test_packing.py checks of dense packs, per family.

The packed model has its family's layers, names and weight order with the member axis in front
and computes each member's own network; in a Ray worker, a pack of 3 reports per epoch what its 3
trials report alone (Adam, L-Adam with schedules, Layer Langevin; members differing in seed,
learning rate and σ), restores per member, and masks a diverged member.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest
from study_helpers import TINY_DATA
from test_packing import (
    _varied,
    assert_reported_alone,
    assert_restores_per_member,
    diverging_pack,
    members,
)
from trainable_helpers import run_trial

from harness.models import build_model
from harness.optimizers.layer_langevin import noisy_variable_paths
from harness.packing.model import build_packed, load_members, pack_model
from harness.packing.step_mode import xla_compiles
from harness.study.packs import pack_configs

# conv_dense needs images of 16 × 16 at least: 4×4 conv and 2×2 pool twice leave 1 × 1
FAMILIES = {
    "conv_dense": dict(model={"family": "conv_dense", "depths": [2],
                              "options": {"width": 8, "filters": 4}},
                       dataset={**TINY_DATA, "options": {**TINY_DATA["options"],
                                                         "shape": [16, 16, 2]}}),
    "highway": dict(model={"family": "highway", "depths": [3], "options": {"width": 16}}),
}
# (base config, the members' σ). Full Langevin up to σ = 3e-3 at γ = 1e-2 (agreement 1e-7):
# float32 rounding (packed batched matmul vs Keras matmul, 1e-7 in a gradient that cancels to
# ~1e-6) is amplified by Adam's step on near-zero gradients (γ g / (|g| + ε)) and by the noise
# √P·σ√γ·ξ there (√P up to 1/√ε); the highway member at σ = 1e-2 reached rel 1e-4 by epoch 3
# (a test image flipped), at 3e-2 5e-4, while a pack of 3 against packs of 1 stayed at 1e-7
OPTIMIZERS = {
    "adam": ({"base": "adam", "learning_rate": 1e-3}, [0.0] * 3),
    "langevin_adam": ({"base": "adam", "learning_rate": 1e-3, "sigma": 1e-3,
                       "lr_schedule": {"name": "piecewise", "epoch": 2, "factor": 0.1},
                       "sigma_schedule": {"name": "off_after", "epoch": 2}}, [1e-3, 0.0, 3e-3]),
    # noise on the first half of model.layers only: the stem (highway), the convolutions
    "layer_langevin": ({"base": "adam", "learning_rate": 1e-3, "sigma": 1e-2,
                        "layer_fraction": 0.5}, [1e-2, 3e-3, 1e-2]),
}


def _shape(family: str) -> tuple:
    return tuple(FAMILIES[family].get("dataset", TINY_DATA)["options"]["shape"])


def _own_models(family: str, seeds) -> list[keras.Model]:
    model = FAMILIES[family]["model"]
    own = []
    for seed in seeds:
        keras.utils.set_random_seed(seed)
        own.append(build_model(family, model["depths"][0], _shape(family), 10,
                               **model["options"]))
    return own


@pytest.mark.parametrize("family", FAMILIES)
def test_a_packed_net_is_its_members_nets_layer_by_layer(family):
    """Same layers and names, every weight member k's at slice k, the same Layer Langevin
    variables, and each member's logits from its own column."""
    own = _own_models(family, [0, 1, 2])
    model = FAMILIES[family]["model"]
    packed = build_packed(family, model["depths"][0], _shape(family), 10, 3, **model["options"])
    load_members(packed, own)
    assert [layer.name for layer in packed.layers] == [layer.name for layer in own[0].layers]
    for weight, *theirs in zip(packed.weights, *(m.weights for m in own), strict=True):
        assert [w.path for w in theirs] == [weight.path] * 3
        for k, w in enumerate(theirs):
            np.testing.assert_array_equal(weight.numpy()[k], w.numpy())
    for fraction in (0.3, 0.5, 1.0):
        assert noisy_variable_paths(packed, fraction) == noisy_variable_paths(own[0], fraction)
    x = np.random.default_rng(0).normal(size=(5, 3, *_shape(family))).astype("float32")
    logits = packed(x).numpy()
    for k, member in enumerate(own):
        np.testing.assert_allclose(logits[:, k], member(x[:, k]).numpy(), rtol=1e-5, atol=1e-6)


def test_a_layer_the_packed_layers_do_not_compute_is_refused():
    inputs = keras.Input((8, 8, 1))
    same = keras.layers.Conv2D(4, 3, padding="same")(inputs)
    with pytest.raises(ValueError, match="its padding is 'same', a packed layer's 'valid'"):
        pack_model(keras.Model(inputs, same), 2)
    x = keras.layers.Conv2D(4, 3)(inputs)
    y = keras.layers.Add()([x, keras.layers.Conv2D(4, 1)(x)])
    with pytest.raises(ValueError, match="not a chain of layers"):
        pack_model(keras.Model(inputs, y), 2)


def test_under_auto_a_cpu_compiles_only_a_dense_pack_whose_trial_repays_the_compile():
    """XLA where the line through its two measured whole-pack times lies below graph mode's:
    dense 8 crosses at 54 + (13.7 − 11.55) · 264 / ((35.1 − 11.55) − (30.8 − 13.7)) = 142 steps,
    dense 16 at 54 + 2.15 · 264 / (43.35 − 28.7) = 92.7 steps; highway and conv + dense never;
    a GPU always, the study's own setting over all."""
    def on_cpu(family, k, steps):
        return xla_compiles(family, k, "auto", steps, on_gpu=False)[0]

    assert [on_cpu("dense", 8, steps) for steps in (54, 141, 143, 5000)] == [
        False, False, True, True]
    assert [on_cpu("dense", 16, steps) for steps in (92, 93)] == [False, True]
    assert on_cpu("dense", 3, 141) is False  # nearest measured size: 8
    assert xla_compiles("dense", 8, "auto", 318, on_gpu=False)[1].endswith(
        "35.1 s and 30.8 s at 318: at this trial's 318 steps XLA is faster")
    for family in ("conv_dense", "highway"):
        assert on_cpu(family, 8, 10**6) is False
        assert xla_compiles(family, 8, "auto", 1, on_gpu=True) == (True, "jit_compile auto on a GPU")
    for family in ("dense", "highway"):
        assert xla_compiles(family, 8, True, 1, on_gpu=False)[0] is True
        assert xla_compiles(family, 8, False, 10**6, on_gpu=True)[0] is False


# -- a pack against its members alone, in a Ray worker -------------------------------------------

def _pack(workdir, family: str, optimizer: str):
    """The pack of 3 (seeds 0-2, learning rates 3e-3, 1e-3, 1e-2, the optimizer's σ) run in
    the worker: (members, pack, what it reported)."""
    config, sigmas = OPTIMIZERS[optimizer]
    name = f"{family}-{optimizer}"
    group = _varied(members(workdir, name, [config], **FAMILIES[family]),
                    rates=[3e-3, 1e-3, 1e-2], sigmas=sigmas)
    (pack,) = pack_configs(group, 3)
    return group, pack


@pytest.fixture(scope="module")
def langevin_packs(worker, workdir):
    """family → (members, pack, reported) of its L-Adam pack (shared with the restore test)."""
    packs = {}
    for family in FAMILIES:
        group, pack = _pack(workdir, family, "langevin_adam")
        packs[family] = group, pack, run_trial(worker, pack, workdir, f"{family}-lpack")
    return packs


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
@pytest.mark.parametrize("family", FAMILIES)
def test_a_packed_family_reports_what_its_trials_report_alone(family, optimizer, worker,
                                                              workdir, langevin_packs):
    if optimizer == "langevin_adam":
        group, _, packed = langevin_packs[family]
    else:
        group, pack = _pack(workdir, family, optimizer)
        packed = run_trial(worker, pack, workdir, f"{family}-{optimizer}-pack")
    assert {m["model"] for m in group} == {family}
    assert_reported_alone(worker, workdir, group, packed)


@pytest.mark.parametrize("family", FAMILIES)
def test_a_restored_packed_family_continues_every_member(family, worker, workdir,
                                                         langevin_packs):
    assert_restores_per_member(worker, workdir, *langevin_packs[family])


@pytest.mark.parametrize("family", FAMILIES)
def test_a_diverged_member_of_a_packed_family_is_masked(family, worker, workdir):
    group, _, _ = diverging_pack(worker, workdir, f"{family}-nanpack", **FAMILIES[family])
    assert {m["model"] for m in group} == {family}
