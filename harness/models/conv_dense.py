"""Convolutional stem followed by a deep dense stack (the paper's "conv + dense" sweep).

2 × [Conv2D(filters, 4×4, ReLU, valid padding) + MaxPool 2×2] → Flatten
→ depth × Dense(width, ReLU) → Dense(num_classes) logits.
"""

from __future__ import annotations

import keras

from harness.models.common import logits_head, model_input
from harness.models.depths import check_min_depth


def build(
    depth: int, input_shape: tuple, num_classes: int, *, width: int = 64, filters: int = 32
) -> keras.Model:
    """Two conv/pool stages, then `depth` hidden ReLU layers of `width` units."""
    depth = check_min_depth("conv_dense", depth)
    inputs = model_input(input_shape)
    x = inputs
    for i in (1, 2):
        x = keras.layers.Conv2D(filters, 4, activation="relu", name=f"conv_{i}")(x)
        x = keras.layers.MaxPooling2D(2, name=f"pool_{i}")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    for i in range(1, depth + 1):
        x = keras.layers.Dense(width, activation="relu", name=f"dense_{i}")(x)
    return keras.Model(inputs, logits_head(x, num_classes), name=f"conv_dense_{depth}")
