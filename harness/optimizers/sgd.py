"""L-SGD: Langevin gradient descent, P = I (paper, "Langevin Gradient Descent"), with Keras SGD's
momentum and Nesterov options.

    v_k = μ v_{k-1} − γ_k g_k                          (μ = `momentum`; v is not kept when μ = 0)
    θ_k = θ_{k-1} + v_k + σ_k √γ_k ξ_k                  (heavy ball)
    θ_k = θ_{k-1} + μ v_k − γ_k g_k + σ_k √γ_k ξ_k      (`nesterov=True`)

With μ = 0 both read θ_k = θ_{k-1} − γ_k g_k + σ_k √γ_k ξ_k, the paper's L-SGD; σ = 0 is Keras
SGD with the same options. Langevin meaning of momentum: the noise is added to θ, not to the
velocity v, so each step's noise stays N(0, σ² γ I) and is not carried over to later steps (as in
L-Adam, whose noise uses the preconditioner and not the momentum).
"""

from __future__ import annotations

import keras
from keras import ops

from harness.optimizers.langevin import LangevinOptimizer, check_flag, check_unit


@keras.saving.register_keras_serializable(package="harness")
class LSGD(LangevinOptimizer):
    """Langevin SGD. Defaults from the reference: γ = 1e-3, σ = 1e-3; momentum 0 (Keras' default)."""

    def __init__(
        self,
        learning_rate=1e-3,
        sigma=1e-3,
        seed=0,
        momentum=0.0,
        nesterov=False,
        name="lsgd",
        **kwargs,
    ):
        super().__init__(learning_rate=learning_rate, sigma=sigma, seed=seed, name=name, **kwargs)
        self.momentum = check_unit("momentum", momentum, closed_high=True)
        self.nesterov = check_flag("nesterov", nesterov)

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        self._velocities = (
            self.add_optimizer_variables(var_list, "momentum") if self.momentum > 0 else []
        )

    def update_step(self, gradient, variable, learning_rate):
        lr = self.member_rate(learning_rate, variable)
        gradient = ops.cast(gradient, variable.dtype)
        step = lr * gradient
        if self.momentum > 0:
            v = self._velocities[self._get_variable_index(variable)]
            self.assign(v, self.momentum * v - step)
            step = step - self.momentum * v if self.nesterov else -v
        self.assign_add(variable, self.langevin_increment(variable, step, learning_rate, 1.0))

    def get_config(self):
        config = super().get_config()
        config.update({"momentum": self.momentum, "nesterov": self.nesterov})
        return config
