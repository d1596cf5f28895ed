"""L-RMSprop: RMSprop with Langevin noise preconditioned by RMSprop's P (reference table).

    r_k = ρ r_{k-1} + (1 − ρ) g_k²       (ρ is the reference's α)
    P_k = 1 / (ε + √r_k)
    θ_k = θ_{k-1} − γ_k P_k g_k + σ_k √(γ_k P_k) ξ_k
"""

from __future__ import annotations

import keras
from keras import ops

from harness.optimizers.langevin import LangevinOptimizer, check_positive, check_unit


@keras.saving.register_keras_serializable(package="harness")
class LRMSprop(LangevinOptimizer):
    """Langevin RMSprop. Defaults from the reference: γ 1e-3, σ 1e-3, ρ (α) 0.9, ε 1e-6."""

    def __init__(
        self, learning_rate=1e-3, sigma=1e-3, seed=0, rho=0.9, epsilon=1e-6, name="lrmsprop",
        **kwargs,
    ):
        super().__init__(learning_rate=learning_rate, sigma=sigma, seed=seed, name=name, **kwargs)
        self.rho = check_unit("rho", rho)
        self.epsilon = check_positive("epsilon", epsilon)

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        self._mean_squares = self.add_optimizer_variables(var_list, "mean_square")

    def update_step(self, gradient, variable, learning_rate):
        r = self._mean_squares[self._get_variable_index(variable)]
        lr = ops.cast(learning_rate, variable.dtype)
        gradient = ops.cast(gradient, variable.dtype)

        self.assign_add(r, (ops.square(gradient) - r) * (1 - self.rho))
        preconditioner = 1.0 / (self.epsilon + ops.sqrt(r))
        drift = lr * preconditioner * gradient
        self.assign_add(
            variable, self.langevin_increment(variable, drift, learning_rate, preconditioner)
        )

    def get_config(self):
        config = super().get_config()
        config.update({"rho": self.rho, "epsilon": self.epsilon})
        return config
