"""γ/σ schedules: values against their formulas, serialisation, and the spec factory's errors."""

import math

import keras
import numpy as np
import pytest

from harness.optimizers.schedules import SCHEDULE_NAMES, LogDecay, OffAfter, from_spec


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
