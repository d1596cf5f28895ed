"""L-RMSprop: RMSprop with Langevin noise preconditioned by RMSprop's P (reference table), with
Keras RMSprop's `centered` and `momentum` options.

    r_k = ρ r_{k-1} + (1 − ρ) g_k²                      (ρ is the reference's α)
    P_k = 1 / (ε + √r_k)
    P_k = 1 / (ε + √max(r_k − ḡ_k², 0)),  ḡ_k = ρ ḡ_{k-1} + (1 − ρ) g_k     (`centered=True`)
    θ_k = θ_{k-1} − γ_k P_k g_k + σ_k √(γ_k P_k) ξ_k
    with momentum μ > 0:  m_k = μ m_{k-1} + γ_k P_k g_k,   θ_k = θ_{k-1} − m_k + σ_k √(γ_k P_k) ξ_k

σ = 0 is Keras RMSprop with the same options, except that ε sits outside the root (the paper's
P; Keras uses √(r + ε)). Langevin meaning of the options: `centered` preconditions the noise by
the centred estimate too (P from the gradient's variance); with momentum the noise is added to θ,
not accumulated in m, so each step's noise stays N(0, σ² γ P).
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
class LRMSprop(LangevinOptimizer):
    """Langevin RMSprop. Defaults from the reference: γ 1e-3, σ 1e-3, ρ (α) 0.9, ε 1e-6;
    momentum 0 and not centred (Keras' defaults)."""

    def __init__(
        self,
        learning_rate=1e-3,
        sigma=1e-3,
        seed=0,
        rho=0.9,
        momentum=0.0,
        epsilon=1e-6,
        centered=False,
        name="lrmsprop",
        **kwargs,
    ):
        super().__init__(learning_rate=learning_rate, sigma=sigma, seed=seed, name=name, **kwargs)
        self.rho = check_unit("rho", rho)
        self.momentum = check_unit("momentum", momentum)
        self.epsilon = check_positive("epsilon", epsilon)
        self.centered = check_flag("centered", centered)

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        self._mean_squares = self.add_optimizer_variables(var_list, "mean_square")
        self._mean_grads = (
            self.add_optimizer_variables(var_list, "mean_grad") if self.centered else []
        )
        self._momentums = (
            self.add_optimizer_variables(var_list, "momentum") if self.momentum > 0 else []
        )

    def update_step(self, gradient, variable, learning_rate):
        index = self._get_variable_index(variable)
        r = self._mean_squares[index]
        lr = self.member_rate(learning_rate, variable)
        gradient = ops.cast(gradient, variable.dtype)

        self.assign_add(r, (ops.square(gradient) - r) * (1 - self.rho))
        second_moment = r
        if self.centered:
            g_bar = self._mean_grads[index]
            self.assign_add(g_bar, (gradient - g_bar) * (1 - self.rho))
            second_moment = ops.maximum(r - ops.square(g_bar), 0.0)
        preconditioner = 1.0 / (self.epsilon + ops.sqrt(second_moment))
        drift = lr * preconditioner * gradient
        if self.momentum > 0:
            m = self._momentums[index]
            self.assign(m, self.momentum * m + drift)
            drift = m
        self.assign_add(
            variable, self.langevin_increment(variable, drift, learning_rate, preconditioner)
        )

    def get_config(self):
        config = super().get_config()
        config.update({"rho": self.rho, "momentum": self.momentum, "epsilon": self.epsilon,
                       "centered": self.centered})
        return config
