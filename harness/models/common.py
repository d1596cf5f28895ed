"""Pieces every model family shares: the input and the float32 logits head."""

from __future__ import annotations

import keras


def model_input(input_shape: tuple) -> keras.KerasTensor:
    """The functional model's input for images of `input_shape` (height, width, channels)."""
    return keras.Input(shape=tuple(input_shape), name="image")


def logits_head(x, num_classes: int) -> keras.KerasTensor:
    """Dense(num_classes) logits, kept in float32 under a mixed-precision policy.

    A float16 softmax cross-entropy loses precision; the Keras mixed-precision guide keeps the
    model's last layer in float32.
    """
    if int(num_classes) < 2:
        raise ValueError(f"num_classes must be at least 2, got {num_classes}")
    return keras.layers.Dense(int(num_classes), dtype="float32", name="logits")(x)


def l2(weight_decay: float):
    """An L2 kernel regulariser adding `weight_decay`·‖W‖² to the loss, or None for 0."""
    return keras.regularizers.L2(weight_decay) if weight_decay else None
