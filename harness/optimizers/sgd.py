"""L-SGD: Langevin gradient descent, P = I (paper, "Langevin Gradient Descent").

    θ_k = θ_{k-1} − γ_k g_k + σ_k √γ_k ξ_k

σ = 0 is plain SGD without momentum.
"""

from __future__ import annotations

import keras
from keras import ops

from harness.optimizers.langevin import LangevinOptimizer


@keras.saving.register_keras_serializable(package="harness")
class LSGD(LangevinOptimizer):
    """Langevin SGD. Defaults from the reference: γ = 1e-3, σ = 1e-3."""

    def __init__(self, learning_rate=1e-3, sigma=1e-3, seed=0, name="lsgd", **kwargs):
        super().__init__(learning_rate=learning_rate, sigma=sigma, seed=seed, name=name, **kwargs)

    def update_step(self, gradient, variable, learning_rate):
        lr = ops.cast(learning_rate, variable.dtype)
        gradient = ops.cast(gradient, variable.dtype)
        self.assign_add(
            variable, self.langevin_increment(variable, lr * gradient, learning_rate, 1.0)
        )
