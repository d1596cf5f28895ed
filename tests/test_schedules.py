"""γ/σ schedules: values against their formulas, serialisation, the spec factory's errors, and
σ schedules driving the optimizer's noise step by step."""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from harness.optimizers import LSGD
from harness.optimizers.noise import philox_normal
from harness.optimizers.schedule_spec import SCHEDULE_NAMES
from harness.optimizers.schedules import LogDecay, OffAfter, from_spec


def test_log_decay_formula():
    schedule = LogDecay(0.01, decay_steps=100)
    for t in [0, 1, 50, 100, 10_000]:
        expected = 0.01 / math.sqrt(math.log(t / 100 + math.e))
        assert float(schedule(t)) == pytest.approx(expected, rel=1e-6)


def test_off_after_switches_at_the_boundary():
    schedule = OffAfter(0.5, boundary_step=30)
    assert [float(schedule(t)) for t in (0, 29, 30, 31)] == [0.5, 0.5, 0.0, 0.0]


@pytest.mark.parametrize("schedule", [LogDecay(0.01, 40), OffAfter(0.2, 7)])
def test_schedules_serialise(schedule):
    restored = keras.optimizers.schedules.deserialize(
        keras.optimizers.schedules.serialize(schedule)
    )
    assert type(restored) is type(schedule)
    assert restored.get_config() == schedule.get_config()
    steps = np.array([0, 3, 7, 100])
    np.testing.assert_allclose([float(restored(s)) for s in steps],
                               [float(schedule(s)) for s in steps])


def test_from_spec_builds_every_schedule_with_epochs_in_steps():
    spe = 10
    assert from_spec(0.1, None, spe) == 0.1
    assert from_spec(0.1, {"name": "constant"}, spe) == 0.1
    log = from_spec(0.1, {"name": "log", "epochs": 2}, spe)
    assert log.decay_steps == 20
    inv = from_spec(0.1, {"name": "inverse_time", "epochs": 2}, spe)
    assert float(inv(20)) == pytest.approx(0.05)  # γ_0 / (1 + t/T) at t = T
    piece = from_spec(0.1, {"name": "piecewise", "epoch": 3, "factor": 0.1}, spe)
    assert float(piece(29)) == pytest.approx(0.1)  # last step of epoch 3
    assert float(piece(30)) == pytest.approx(0.01)  # first step of epoch 4
    off = from_spec(0.1, {"name": "off_after", "epoch": 3}, spe)
    assert float(off(29)) == pytest.approx(0.1) and float(off(30)) == 0.0


def test_from_spec_rejects_unknown_names_and_fields():
    with pytest.raises(ValueError, match="unknown schedule name 'cosine'; allowed: " + ", ".join(SCHEDULE_NAMES)):
        from_spec(0.1, {"name": "cosine"}, 10)
    with pytest.raises(ValueError, match="needs the field 'epochs'"):
        from_spec(0.1, {"name": "log"}, 10)
    with pytest.raises(ValueError, match="unknown field"):
        from_spec(0.1, {"name": "log", "epochs": 2, "decay": 3}, 10)


# -- σ schedules inside the optimizer, over steps ---------------------------------------------------
SHAPES = [(4, 3), (5,)]
LR = 0.04


def _noise_moves(sigma, steps, compiled):
    """L-SGD with zero gradients (weights move by noise only): per-step increments per variable."""
    variables = [keras.Variable(np.zeros(s, np.float32)) for s in SHAPES]
    optimizer = LSGD(learning_rate=LR, sigma=sigma, seed=5)
    zeros = [tf.zeros(s) for s in SHAPES]

    def apply():
        optimizer.apply(zeros, variables)

    step = tf.function(apply) if compiled else apply
    moves, before = [], [v.numpy().copy() for v in variables]
    for _ in range(steps):
        step()
        after = [v.numpy().copy() for v in variables]
        moves.append([a - b for a, b in zip(after, before)])
        before = after
    return moves


def _reference_noise(k, i, scale):
    """The documented noise of variable i at 0-based step k: scale · its slice of stream k."""
    sizes = [int(np.prod(s)) for s in SHAPES]
    start = sum(sizes[:i])
    xi = philox_normal((sum(sizes),), 5, k).numpy()[start : start + sizes[i]]
    return scale * xi.reshape(SHAPES[i])


@pytest.mark.parametrize("compiled", [False, True], ids=["eager", "tf.function"])
def test_off_after_noise_moves_weights_before_the_switch_and_never_after(compiled):
    sigma0, boundary, steps = 0.5, 3, 6
    moves = _noise_moves(OffAfter(sigma0, boundary_step=boundary), steps, compiled)
    for k in range(steps):
        for i in range(len(SHAPES)):
            if k < boundary:
                np.testing.assert_allclose(moves[k][i],
                                           _reference_noise(k, i, sigma0 * math.sqrt(LR)),
                                           rtol=1e-5, atol=1e-7, err_msg=f"step {k}")
                assert np.abs(moves[k][i]).min() > 0
            else:
                np.testing.assert_array_equal(moves[k][i], 0.0, err_msg=f"step {k}")


@pytest.mark.parametrize("compiled", [False, True], ids=["eager", "tf.function"])
def test_log_decay_scales_the_noise_by_its_value_at_each_step(compiled):
    """σ_k = σ_0/√ln(k/T + e) at k = 0, 1, …: a schedule frozen at its step-0 value fails from
    k = 1 on (T = 2 makes the decay 20 % by k = 3)."""
    sigma0, decay_steps, steps = 0.5, 2.0, 5
    moves = _noise_moves(LogDecay(sigma0, decay_steps=decay_steps), steps, compiled)
    for k in range(steps):
        sigma_k = sigma0 / math.sqrt(math.log(k / decay_steps + math.e))
        for i in range(len(SHAPES)):
            np.testing.assert_allclose(moves[k][i],
                                       _reference_noise(k, i, sigma_k * math.sqrt(LR)),
                                       rtol=1e-5, atol=1e-7, err_msg=f"step {k}")
