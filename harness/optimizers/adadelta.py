"""L-Adadelta: Adadelta with Langevin noise preconditioned by Adadelta's P (reference table).

    a_k = β2 a_{k-1} + (1 − β2) g_k²
    P_k = √(d_{k-1} + ε) / √(a_k + ε)           (d from the previous step)
    Δ_k = −γ_k P_k g_k + σ_k √(γ_k P_k) ξ_k,     θ_k = θ_{k-1} + Δ_k
    d_k = β1 d_{k-1} + (1 − β1) Δ_k²              (the applied increment, noise included)

d accumulates the applied, lr-scaled increment (the paper's form). Keras and PyTorch Adadelta
accumulate the step before the learning rate, u_k = −P_k g_k, and apply γ_k u_k: σ = 0 equals
them at γ = 1 only. `rho` is Keras' single decay: `rho=x` sets β1 = β2 = x.
"""

from __future__ import annotations

import keras
from keras import ops

from harness.optimizers.langevin import LangevinOptimizer, check_positive, check_unit


@keras.saving.register_keras_serializable(package="harness")
class LAdadelta(LangevinOptimizer):
    """Langevin Adadelta. Defaults from the reference: γ 0.01, σ 1e-3, β1 = β2 = 0.95, ε 1e-6.

    `rho` (Keras' name, default None) sets both decays; it cannot be combined with a β1 or β2
    other than the default."""

    def __init__(
        self,
        learning_rate=0.01,
        sigma=1e-3,
        seed=0,
        beta_1=0.95,
        beta_2=0.95,
        epsilon=1e-6,
        rho=None,
        name="ladadelta",
        **kwargs,
    ):
        super().__init__(learning_rate=learning_rate, sigma=sigma, seed=seed, name=name, **kwargs)
        if rho is not None:
            if (beta_1, beta_2) != (0.95, 0.95):
                raise ValueError(
                    f"rho sets beta_1 = beta_2; give rho or beta_1/beta_2, not both "
                    f"(got rho={rho!r}, beta_1={beta_1!r}, beta_2={beta_2!r})"
                )
            beta_1 = beta_2 = check_unit("rho", rho)
        self.beta_1 = check_unit("beta_1", beta_1)
        self.beta_2 = check_unit("beta_2", beta_2)
        self.epsilon = check_positive("epsilon", epsilon)

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        self._grad_squares, self._delta_squares = self.add_optimizer_variables(
            var_list, ["grad_square", "delta_square"]
        )

    def update_step(self, gradient, variable, learning_rate):
        index = self._get_variable_index(variable)
        a, d = self._grad_squares[index], self._delta_squares[index]
        lr = self.member_rate(learning_rate, variable)
        gradient = ops.cast(gradient, variable.dtype)

        self.assign_add(a, (ops.square(gradient) - a) * (1 - self.beta_2))
        preconditioner = ops.sqrt(d + self.epsilon) / ops.sqrt(a + self.epsilon)
        delta = self.langevin_increment(
            variable, lr * preconditioner * gradient, learning_rate, preconditioner
        )
        self.assign_add(variable, delta)
        self.assign_add(d, (ops.square(delta) - d) * (1 - self.beta_1))

    def get_config(self):
        config = super().get_config()
        config.update({"beta_1": self.beta_1, "beta_2": self.beta_2, "epsilon": self.epsilon})
        return config
