"""Step schedules for γ and σ that the paper's experiments use and Keras lacks.

All take the optimizer's step t (0-based iteration count) and are serialisable Keras objects.

- `LogDecay`:  σ_t = σ_0 / √(ln(t / T + e))   (paper's last runs: T = 20 epochs' steps).
- `OffAfter`:  v_t = v_0 for t < t_off, 0 afterwards ("noise until epoch E, then off").
- `MemberRates`: v_{k,t} = v_k · u_t, one value per member k of a packed model (u_t ≡ 1 or a
  schedule of unit initial value).

`from_spec` builds any schedule of a search-space file, epochs converted to steps (a list of
initial values v_k gives `MemberRates`, see `from_spec`):

    {"name": "constant"}                      v_t = v_0
    {"name": "log", "epochs": T}              LogDecay
    {"name": "inverse_time", "epochs": T}     v_t = v_0 / (1 + t / T)   (Keras InverseTimeDecay)
    {"name": "piecewise", "epoch": E, "factor": f}   v_0 before epoch E, f · v_0 from it on
    {"name": "off_after", "epoch": E}         OffAfter
"""

from __future__ import annotations

import math

import keras
from keras import ops
from keras.optimizers.schedules import (
    InverseTimeDecay,
    LearningRateSchedule,
    PiecewiseConstantDecay,
)

from harness.optimizers.schedule_spec import check_schedule


@keras.saving.register_keras_serializable(package="harness")
class LogDecay(LearningRateSchedule):
    """σ_t = σ_0 / √(ln(t / T + e)): equals σ_0 at t = 0 and decays like 1/√ln t."""

    def __init__(self, initial_value: float, decay_steps: float, name: str | None = None):
        super().__init__()
        if not decay_steps > 0:
            raise ValueError(f"LogDecay decay_steps must be > 0; got {decay_steps!r}")
        self.initial_value = float(initial_value)
        self.decay_steps = float(decay_steps)
        self.name = name

    def __call__(self, step):
        t = ops.cast(step, "float32")
        return self.initial_value / ops.sqrt(ops.log(t / self.decay_steps + math.e))

    def get_config(self):
        return {"initial_value": self.initial_value, "decay_steps": self.decay_steps, "name": self.name}


@keras.saving.register_keras_serializable(package="harness")
class OffAfter(LearningRateSchedule):
    """v_t = v_0 for t < boundary_step, then 0: Langevin noise only in the first phase."""

    def __init__(self, initial_value: float, boundary_step: int, name: str | None = None):
        super().__init__()
        if boundary_step < 0:
            raise ValueError(f"OffAfter boundary_step must be >= 0; got {boundary_step!r}")
        self.initial_value = float(initial_value)
        self.boundary_step = int(boundary_step)
        self.name = name

    def __call__(self, step):
        on = ops.cast(ops.less(step, self.boundary_step), "float32")
        return self.initial_value * on

    def get_config(self):
        return {
            "initial_value": self.initial_value,
            "boundary_step": self.boundary_step,
            "name": self.name,
        }


@keras.saving.register_keras_serializable(package="harness")
class MemberRates(LearningRateSchedule):
    """One rate per member of a packed model: v_{k,t} = values[k] · unit(t), k = 0 … K−1.

    `unit` is None (unit(t) ≡ 1: constant rates) or a `LearningRateSchedule` of unit initial
    value; every schedule of `from_spec` is linear in its initial value, so member k follows
    exactly the schedule it would follow alone, up to float32 rounding of the product. Returns
    a float32 vector of shape [K].
    """

    def __init__(self, values, unit: LearningRateSchedule | None = None, name: str | None = None):
        super().__init__()
        if not isinstance(values, list | tuple) or not values or any(
            isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v)
            for v in values
        ):
            raise ValueError(f"MemberRates values must be a non-empty list of finite numbers; "
                             f"got {values!r}")
        if unit is not None and not isinstance(unit, LearningRateSchedule):
            raise ValueError(f"MemberRates unit must be None or a LearningRateSchedule; got {unit!r}")
        self.values = [float(v) for v in values]
        self.unit = unit
        self.name = name

    def __call__(self, step):
        values = ops.convert_to_tensor(self.values, "float32")
        if self.unit is None:
            return values
        return values * ops.cast(self.unit(step), "float32")

    def get_config(self):
        unit = None if self.unit is None else keras.saving.serialize_keras_object(self.unit)
        return {"values": list(self.values), "unit": unit, "name": self.name}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        if config.get("unit") is not None:
            config["unit"] = keras.saving.deserialize_keras_object(config["unit"])
        return cls(**config)


def from_spec(initial_value, spec: dict | None, steps_per_epoch: int):
    """A float or a `LearningRateSchedule` for `initial_value` under the schedule `spec`.

    `initial_value` may be a list of K floats (one per member of a packed model): the result is
    `MemberRates(values, unit)` with unit = the schedule for initial value 1 (None when that is
    constant), or the float 0.0 when every value is 0 (no member adds noise: no draw at all).
    Raises ValueError naming the allowed schedule names for an unknown one.
    """
    if isinstance(initial_value, list | tuple):
        unit = from_spec(1.0, spec, steps_per_epoch)
        rates = MemberRates(initial_value, unit if isinstance(unit, LearningRateSchedule) else None)
        return 0.0 if all(v == 0.0 for v in rates.values) else rates
    if spec is None:
        return float(initial_value)
    name, fields = check_schedule(spec)
    v0 = float(initial_value)
    if name == "constant":
        return v0
    if name == "log":
        return LogDecay(v0, fields["epochs"] * steps_per_epoch)
    if name == "inverse_time":
        return InverseTimeDecay(v0, decay_steps=fields["epochs"] * steps_per_epoch,
                                decay_rate=1.0)
    boundary = int(fields["epoch"] * steps_per_epoch)
    if name == "off_after":
        return OffAfter(v0, boundary)
    # Keras' PiecewiseConstantDecay keeps the first value while step <= boundary.
    return PiecewiseConstantDecay([max(boundary - 1, 0)], [v0, v0 * float(fields["factor"])])
