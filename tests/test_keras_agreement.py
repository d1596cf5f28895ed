"""Our optimizers at σ = 0 against the numbers Keras 3 pins in its own optimizer tests.

The pinned values are copied from `keras/src/optimizers/{sgd,adam,rmsprop,adadelta,adagrad}_test.py`
(Keras 3.15: `test_single_step`, `test_weight_decay`, `test_correctness_with_golden`, the clipping
tests). Each check runs `keras.optimizers.X` and ours with Keras' hyper-parameters, so a change
in either shows here. Where the project follows the paper on purpose (ε outside the root;
L-Adadelta's accumulator of lr-scaled increments), the difference is pinned instead: ours equals
the NumPy reference of the paper's rule, Keras equals the NumPy form of its own rule, and the two
differ. README, "Differences from keras.optimizers", lists the same.
"""

from __future__ import annotations

import inspect

import keras
import numpy as np
import pytest
import tensorflow as tf
from test_optimizers import numpy_reference

from harness.optimizers import LSGD, LAdadelta, LAdagrad, LAdam, LRMSprop

# Keras' defaults where ours (the paper's) differ: ours get these to run Keras' tests.
KERAS_DEFAULTS = {
    "sgd": {"learning_rate": 0.01},
    "adam": {"epsilon": 1e-7},
    "rmsprop": {"epsilon": 1e-7},
    "adadelta": {"learning_rate": 0.001, "rho": 0.95, "epsilon": 1e-7},
    "adagrad": {"epsilon": 1e-7},
}
PAIRS = {
    "sgd": (LSGD, keras.optimizers.SGD),
    "adam": (LAdam, keras.optimizers.Adam),
    "rmsprop": (LRMSprop, keras.optimizers.RMSprop),
    "adadelta": (LAdadelta, keras.optimizers.Adadelta),
    "adagrad": (LAdagrad, keras.optimizers.Adagrad),
}


def _both(name, **hp):
    """Ours at σ = 0 and Keras' optimizer, both with Keras' defaults updated by `hp`."""
    ours, theirs = PAIRS[name]
    return ours(sigma=0.0, **{**KERAS_DEFAULTS[name], **hp}), theirs(**hp)


# -- test_single_step: learning_rate 0.5, grads [1, 6, 7, 2] on [1, 2, 3, 4] ---------------------
SINGLE_STEP = {
    "sgd": [0.5, -1.0, -0.5, 3.0],
    "adam": [0.5, 1.5, 2.5, 3.5],
    "rmsprop": [-0.5811, 0.4189, 1.4189, 2.4189],
    "adadelta": [0.9993, 1.9993, 2.9993, 3.9993],
    "adagrad": [0.5233, 1.5007, 2.5005, 3.5061],
}


@pytest.mark.parametrize("name", sorted(PAIRS))
def test_single_step_matches_keras_pinned_values(name):
    for optimizer in _both(name, learning_rate=0.5):
        var = keras.Variable([1.0, 2.0, 3.0, 4.0])
        optimizer.apply_gradients([(tf.constant([1.0, 6.0, 7.0, 2.0]), var)])
        np.testing.assert_allclose(var.numpy(), SINGLE_STEP[name], rtol=1e-4, atol=1e-4,
                                   err_msg=type(optimizer).__name__)


# -- test_weight_decay: zero gradients, learning_rate 1, weight_decay 0.004 -----------------------
@pytest.mark.parametrize("name", sorted(PAIRS))
def test_weight_decay_matches_keras_pinned_values(name):
    for pair_index in range(2):
        def make():
            return _both(name, learning_rate=1.0, weight_decay=0.004)[pair_index]  # noqa: B023

        zero = tf.zeros(())
        var1, var2, var3 = (keras.Variable(2.0), keras.Variable(2.0, name="exclude"),
                            keras.Variable(2.0))
        make().apply_gradients([(zero, var1)])
        by_name = make()
        by_name.exclude_from_weight_decay(var_names=["exclude"])
        by_name.apply_gradients([(zero, var1), (zero, var2)])
        by_list = make()
        by_list.exclude_from_weight_decay(var_list=[var3])
        by_list.apply_gradients([(zero, var1), (zero, var3)])
        assert float(var1.numpy()) == pytest.approx(1.9760959, abs=1e-6)
        assert float(var2.numpy()) == float(var3.numpy()) == 2.0


# -- test_correctness_with_golden: 0.01 first, then arange(0.1, 1.1, 0.1) five times -------------
GOLDEN_HP = {
    "sgd": {"nesterov": True},
    "adam": {"amsgrad": True},
    "rmsprop": {"centered": True},
    "adadelta": {"learning_rate": 1.0, "rho": 0.8, "epsilon": 1e-6},
    "adagrad": {"learning_rate": 0.2, "initial_accumulator_value": 0.3, "epsilon": 1e-6},
}
GOLDEN = {
    "sgd": np.array([[0.9999] * 10] + [
        [1 - 0.001 * j * i - 0.0001 for i in range(1, 11)] for j in range(1, 5)]),
    "adam": np.tile([[0.999], [0.9982], [0.9974], [0.9965], [0.9955]], (1, 10)),
    "rmsprop": np.tile([[0.9967], [0.9933], [0.9908], [0.9885], [0.9864]], (1, 10)),
    "adadelta": np.tile([[0.9978], [0.9947], [0.9915], [0.9882], [0.9849]], (1, 10)),
    "adagrad": np.array([
        [0.9963] * 10,
        [0.9604, 0.9278, 0.9003, 0.8784, 0.8615, 0.8487, 0.8388, 0.8313, 0.8255, 0.8209],
        [0.9251, 0.8629, 0.8137, 0.7768, 0.7497, 0.7298, 0.7151, 0.704, 0.6956, 0.6891],
        [0.8903, 0.8012, 0.7342, 0.6862, 0.6521, 0.6277, 0.6099, 0.5967, 0.5867, 0.579],
        [0.856, 0.7422, 0.6604, 0.6037, 0.5644, 0.5367, 0.5168, 0.5021, 0.491, 0.4825],
    ]),
}


@pytest.mark.parametrize("name", sorted(PAIRS))
def test_golden_trajectory_matches_keras_pinned_values(name):
    grads = tf.range(0.1, 1.1, 0.1)[:10]
    pair = _both(name, **GOLDEN_HP[name])
    for optimizer in pair:
        x = keras.Variable(np.ones(10, np.float32))
        optimizer.apply_gradients([(tf.fill([10], 0.01), x)])
        for i in range(5):
            np.testing.assert_allclose(x.numpy(), GOLDEN[name][i], rtol=5e-4, atol=5e-4,
                                       err_msg=f"{type(optimizer).__name__} step {i + 1}")
            optimizer.apply_gradients([(grads, x)])
    # the same state: one slot per Keras slot (none for an option that is off)
    assert len(pair[0].variables) == len(pair[1].variables)


# -- clipping (Keras tests `_clip_gradients`; here through whole steps) ----------------------------
@pytest.mark.parametrize("name", sorted(PAIRS))
@pytest.mark.parametrize("clip", [{"clipnorm": 1.0}, {"clipvalue": 1.0},
                                  {"global_clipnorm": 1.0}], ids=lambda c: next(iter(c)))
def test_clipping_gives_keras_steps(name, clip):
    results = []
    lr = 1.0 if name == "adadelta" else 0.1  # L-Adadelta equals Keras at γ = 1 only (see below)
    for optimizer in _both(name, learning_rate=lr, **clip):
        var = keras.Variable([0.0, 0.0, 0.0])
        for grad in ([100.0, 100.0, 50.0], [-3.0, 40.0, 20.0], [1.0, -80.0, 30.0]):
            optimizer.apply_gradients([(tf.constant(grad), var)])
        results.append(var.numpy())
    np.testing.assert_allclose(results[0], results[1], rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("name, options", [("sgd", {"momentum": 0.0}), ("sgd", {"momentum": 0.9}),
                                           ("rmsprop", {"momentum": 0.5, "centered": True}),
                                           ("adam", {"amsgrad": False})])
def test_state_has_the_slots_keras_has(name, options):
    pair = _both(name, **options)
    var = keras.Variable(np.ones(3, np.float32))
    for optimizer in pair:
        optimizer.build([var])
    assert len(pair[0].variables) == len(pair[1].variables)


def test_sgd_accepts_momentum_one_like_keras():
    assert LSGD(momentum=1.0).momentum == keras.optimizers.SGD(momentum=1.0).momentum == 1.0


def test_sgd_clipnorm_step_is_the_clipped_gradient():
    """Keras' own expectation: clipnorm 1 turns [100, 100] into [√2/2, √2/2]."""
    var = keras.Variable([0.0, 0.0])
    LSGD(learning_rate=1.0, sigma=0.0, clipnorm=1.0).apply_gradients(
        [(tf.constant([100.0, 100.0]), var)])
    np.testing.assert_allclose(var.numpy(), [-(2**0.5) / 2] * 2, rtol=1e-6)


# -- the deliberate differences: each side equals the NumPy form of its own rule ------------------
def _keras_reference(name, hp, theta, grads):
    """Float64 trajectories of Keras' rules (keras/src/optimizers/*.py, update_step)."""
    theta = theta.astype(np.float64).copy()
    lr, eps = hp["learning_rate"], hp["epsilon"]
    m = v = acc_delta = np.zeros_like(theta)
    s = np.full_like(theta, hp.get("initial_accumulator_value", 0.1))
    out = []
    for k, g in enumerate(grads, start=1):
        g = g.astype(np.float64)
        if name == "adam":  # ε is Kingma & Ba's ε̂: added to √v, not to the bias-corrected √v̂
            b1, b2 = hp["beta_1"], hp["beta_2"]
            m = b1 * m + (1 - b1) * g
            v = b2 * v + (1 - b2) * g**2
            theta = theta - lr * np.sqrt(1 - b2**k) / (1 - b1**k) * m / (np.sqrt(v) + eps)
        elif name == "rmsprop":  # ε inside the root
            v = hp["rho"] * v + (1 - hp["rho"]) * g**2
            theta = theta - lr * g / np.sqrt(v + eps)
        elif name == "adagrad":  # ε inside the root
            s = s + g**2
            theta = theta - lr * g / np.sqrt(s + eps)
        elif name == "adadelta":  # the accumulator sees the step before the learning rate
            rho = hp["rho"]
            v = rho * v + (1 - rho) * g**2
            step = -np.sqrt(acc_delta + eps) / np.sqrt(v + eps) * g
            acc_delta = rho * acc_delta + (1 - rho) * step**2
            theta = theta + lr * step
        out.append(theta.copy())
    return out


DIFFERENCES = {  # a large ε (or lr ≠ 1 for Adadelta) so that each difference shows
    "adam": {"learning_rate": 0.1, "beta_1": 0.9, "beta_2": 0.999, "epsilon": 0.1},
    "rmsprop": {"learning_rate": 0.1, "rho": 0.9, "epsilon": 0.1},
    "adagrad": {"learning_rate": 0.1, "initial_accumulator_value": 0.1, "epsilon": 0.1},
    "adadelta": {"learning_rate": 0.5, "rho": 0.9, "epsilon": 1e-3},
}


@pytest.mark.parametrize("name", sorted(DIFFERENCES))
def test_deliberate_differences_each_side_follows_its_own_rule(name):
    hp = DIFFERENCES[name]
    rng = np.random.default_rng(3)
    theta0 = rng.normal(size=6).astype(np.float32)
    grads = [rng.normal(size=6).astype(np.float32) for _ in range(6)]
    trajectories = []
    for optimizer in _both(name, **hp):
        var = keras.Variable(theta0)
        steps = []
        for g in grads:
            optimizer.apply_gradients([(tf.constant(g), var)])
            steps.append(var.numpy().copy())
        trajectories.append(steps)
    ours, theirs = trajectories
    paper_hp = dict(hp, sigma=0.0)
    if name == "adadelta":
        paper_hp.update(beta_1=hp["rho"], beta_2=hp["rho"])
    expected_ours = numpy_reference(name, paper_hp, theta0, grads, [0.0] * len(grads))
    expected_theirs = _keras_reference(name, hp, theta0, grads)
    np.testing.assert_allclose(ours, expected_ours, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(theirs, expected_theirs, rtol=1e-4, atol=1e-5)
    assert np.max(np.abs(np.array(ours) - np.array(theirs))) > 1e-3


def test_adadelta_equals_keras_at_learning_rate_one():
    """The accumulator difference vanishes at γ = 1 (the paper's form is Keras' there)."""
    hp = {"learning_rate": 1.0, "rho": 0.9, "epsilon": 1e-3}
    rng = np.random.default_rng(4)
    grads = [rng.normal(size=5).astype(np.float32) for _ in range(6)]
    results = []
    for optimizer in _both("adadelta", **hp):
        var = keras.Variable(np.ones(5, np.float32))
        for g in grads:
            optimizer.apply_gradients([(tf.constant(g), var)])
        results.append(var.numpy())
    np.testing.assert_allclose(results[0], results[1], rtol=1e-5, atol=1e-6)


# -- defaults: where ours differ from Keras, on purpose (README table) -----------------------------
DEFAULT_DIFFERENCES = {
    "sgd": {"learning_rate": (1e-3, 0.01)},
    "adam": {"epsilon": (1e-6, 1e-7)},
    "rmsprop": {"epsilon": (1e-6, 1e-7)},
    "adadelta": {"learning_rate": (0.01, 0.001), "epsilon": (1e-6, 1e-7), "rho": (None, 0.95)},
    "adagrad": {"epsilon": (1e-6, 1e-7)},
}


@pytest.mark.parametrize("name", sorted(PAIRS))
def test_defaults_differ_from_keras_only_where_documented(name):
    ours, theirs = (
        {k: p.default for k, p in inspect.signature(cls.__init__).parameters.items()
         if p.default is not inspect.Parameter.empty and k != "name"}
        for cls in PAIRS[name]
    )
    differing = {k: (ours[k], theirs[k]) for k in ours.keys() & theirs.keys()
                 if ours[k] != theirs[k]}
    assert differing == DEFAULT_DIFFERENCES[name]
    # every other Keras option is offered: the update rule's by name, the base class's through
    # **kwargs (ours pass them to keras.optimizers.Optimizer)
    keras_only = set(theirs) - set(ours)
    assert keras_only == set(BASE_OPTIONS), f"Keras options not offered by ours: {keras_only}"
    optimizer = PAIRS[name][0](**{k: theirs[k] for k in BASE_OPTIONS})
    assert {k: getattr(optimizer, k) for k in BASE_OPTIONS} == {k: theirs[k] for k in BASE_OPTIONS}


BASE_OPTIONS = ("weight_decay", "clipnorm", "clipvalue", "global_clipnorm", "use_ema",
                "ema_momentum", "ema_overwrite_frequency", "loss_scale_factor",
                "gradient_accumulation_steps")
