"""L-Adam: Adam with Langevin noise preconditioned by Adam's own P (reference table, L-Adam).

    m_k = β1 m_{k-1} + (1 − β1) g_k
    v_k = β2 v_{k-1} + (1 − β2) g_k²,        v̂_k = v_k / (1 − β2^k)
    P_k = 1 / [(1 − β1^k)(ε + √v̂_k)]
    θ_k = θ_{k-1} − γ_k P_k m_k + σ_k √(γ_k P_k) ξ_k

The drift γ P m is bias-corrected Adam, m̂ / (√v̂ + ε); the noise uses the same P, with its
1/(1 − β1^k) factor, and not the momentum. σ = 0 is Keras Adam, except that ε is added to the
bias-corrected √v̂ (Keras adds it to √v, i.e. uses ε √(1 − β2^k) here).

`amsgrad=True` (Keras' option, Reddi et al. 2018) replaces v by its running maximum in P,

    v_max_k = max(v_max_{k-1}, v_k),    v̂_k = v_max_k / (1 − β2^k),

so the noise is preconditioned by the same, never-growing P as the drift.
"""

from __future__ import annotations

import keras
from keras import ops

from harness.optimizers.langevin import (
    LangevinOptimizer,
    check_flag,
    check_positive,
    check_unit,
)


@keras.saving.register_keras_serializable(package="harness")
class LAdam(LangevinOptimizer):
    """Langevin Adam. Defaults from the reference: γ 1e-3, σ 1e-3, β1 0.9, β2 0.999, ε 1e-6;
    amsgrad off (Keras' default)."""

    def __init__(
        self,
        learning_rate=1e-3,
        sigma=1e-3,
        seed=0,
        beta_1=0.9,
        beta_2=0.999,
        epsilon=1e-6,
        amsgrad=False,
        name="ladam",
        **kwargs,
    ):
        super().__init__(learning_rate=learning_rate, sigma=sigma, seed=seed, name=name, **kwargs)
        self.beta_1 = check_unit("beta_1", beta_1)
        self.beta_2 = check_unit("beta_2", beta_2)
        self.epsilon = check_positive("epsilon", epsilon)
        self.amsgrad = check_flag("amsgrad", amsgrad)

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        self._momentums, self._velocities = self.add_optimizer_variables(
            var_list, ["momentum", "velocity"]
        )
        self._velocity_maxima = (
            self.add_optimizer_variables(var_list, "velocity_max") if self.amsgrad else []
        )

    def update_step(self, gradient, variable, learning_rate):
        index = self._get_variable_index(variable)
        m, v = self._momentums[index], self._velocities[index]
        lr = self.member_rate(learning_rate, variable)
        gradient = ops.cast(gradient, variable.dtype)
        step = ops.cast(self.iterations + 1, variable.dtype)
        beta_1_power = ops.power(ops.cast(self.beta_1, variable.dtype), step)
        beta_2_power = ops.power(ops.cast(self.beta_2, variable.dtype), step)

        self.assign_add(m, (gradient - m) * (1 - self.beta_1))
        self.assign_add(v, (ops.square(gradient) - v) * (1 - self.beta_2))
        if self.amsgrad:
            v_max = self._velocity_maxima[index]
            self.assign(v_max, ops.maximum(v_max, v))
            v = v_max
        v_hat = v / (1 - beta_2_power)
        preconditioner = 1.0 / ((1 - beta_1_power) * (self.epsilon + ops.sqrt(v_hat)))
        drift = lr * preconditioner * m
        self.assign_add(
            variable, self.langevin_increment(variable, drift, learning_rate, preconditioner)
        )

    def get_config(self):
        config = super().get_config()
        config.update({"beta_1": self.beta_1, "beta_2": self.beta_2, "epsilon": self.epsilon,
                       "amsgrad": self.amsgrad})
        return config
