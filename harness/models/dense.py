"""Plain deep dense network (the paper's depth sweep on MNIST).

Flatten → depth × Dense(width, ReLU) → Dense(num_classes) logits.
"""

from __future__ import annotations

import keras

from harness.models.common import logits_head, model_input
from harness.models.depths import check_min_depth


def build(depth: int, input_shape: tuple, num_classes: int, *, width: int = 64) -> keras.Model:
    """A dense net with `depth` hidden ReLU layers of `width` units."""
    depth = check_min_depth("dense", depth)
    inputs = model_input(input_shape)
    x = keras.layers.Flatten(name="flatten")(inputs)
    for i in range(1, depth + 1):
        x = keras.layers.Dense(width, activation="relu", name=f"dense_{i}")(x)
    return keras.Model(inputs, logits_head(x, num_classes), name=f"dense_{depth}")
