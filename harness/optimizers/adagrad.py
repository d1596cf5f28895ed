"""L-Adagrad: Adagrad with Langevin noise (an extension: the paper does not test it).

    s_k = s_{k-1} + g_k²,        P_k = 1 / (√s_k + ε)
    θ_k = θ_{k-1} − γ_k P_k g_k + σ_k √(γ_k P_k) ξ_k

s starts at `initial_accumulator_value` (Keras' default 0.1), which bounds P at the first steps.
σ = 0 is Keras Adagrad, except that ε sits outside the root (Keras: γ g / √(s + ε)).
"""

from __future__ import annotations

import keras
from keras import ops

from harness.optimizers.langevin import LangevinOptimizer, check_positive


@keras.saving.register_keras_serializable(package="harness")
class LAdagrad(LangevinOptimizer):
    """Langevin Adagrad. Defaults: γ 1e-3, σ 1e-3, initial accumulator 0.1, ε 1e-6."""

    def __init__(
        self,
        learning_rate=1e-3,
        sigma=1e-3,
        seed=0,
        initial_accumulator_value=0.1,
        epsilon=1e-6,
        name="ladagrad",
        **kwargs,
    ):
        super().__init__(learning_rate=learning_rate, sigma=sigma, seed=seed, name=name, **kwargs)
        if isinstance(initial_accumulator_value, bool) or not isinstance(
            initial_accumulator_value, int | float
        ) or initial_accumulator_value < 0:
            raise ValueError(
                f"initial_accumulator_value must be a number >= 0; got {initial_accumulator_value!r}"
            )
        self.initial_accumulator_value = float(initial_accumulator_value)
        self.epsilon = check_positive("epsilon", epsilon)

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        self._accumulators = self.add_optimizer_variables(
            var_list,
            "accumulator",
            initializer=keras.initializers.Constant(self.initial_accumulator_value),
        )

    def update_step(self, gradient, variable, learning_rate):
        s = self._accumulators[self._get_variable_index(variable)]
        lr = self.member_rate(learning_rate, variable)
        gradient = ops.cast(gradient, variable.dtype)

        self.assign_add(s, ops.square(gradient))
        preconditioner = 1.0 / (ops.sqrt(s) + self.epsilon)
        drift = lr * preconditioner * gradient
        self.assign_add(
            variable, self.langevin_increment(variable, drift, learning_rate, preconditioner)
        )

    def get_config(self):
        config = super().get_config()
        config.update(
            {"initial_accumulator_value": self.initial_accumulator_value, "epsilon": self.epsilon}
        )
        return config
