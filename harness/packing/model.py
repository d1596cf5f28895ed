"""Packed models: K members of one network as one Keras model (issue 15, item 1).

Input [B, K, H, W, C]: column k holds member k's batch. Output: logits [B, K, classes]. The
packed dense layer computes, for every member k at once (one batched matmul),

    y[b, k, :] = act(x[b, k, :] · W[k] + c[k]),     W: [K, in, out],  c: [K, out]

A packed model has the layers of its unpacked family with the same names, and its weights in the
same order with the member axis in front, so member k's unpacked weights are slice k of every
packed weight (`load_members`) and Layer Langevin selects the same variables by path.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from harness.models.common import check_min_depth

PACKABLE_FAMILIES = ("dense",)


@keras.saving.register_keras_serializable(package="harness")
class PackedDense(keras.layers.Layer):
    """K independent Dense(units) layers side by side: y[:, k] = act(x[:, k] W[k] + c[k])."""

    def __init__(self, members: int, units: int, activation=None, **kwargs):
        super().__init__(**kwargs)
        self.members, self.units = int(members), int(units)
        self.activation = keras.activations.get(activation)

    def build(self, input_shape):
        # zeros: the weights come from the members' own unpacked models (`load_members`)
        self.kernel = self.add_weight(name="kernel", shape=(self.members, input_shape[-1],
                                                            self.units), initializer="zeros")
        self.bias = self.add_weight(name="bias", shape=(self.members, self.units),
                                    initializer="zeros")

    def call(self, x):
        kernel = ops.cast(self.kernel, x.dtype)
        return self.activation(ops.einsum("bki,kio->bko", x, kernel) + ops.cast(self.bias, x.dtype))

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.units)

    def get_config(self):
        return {**super().get_config(), "members": self.members, "units": self.units,
                "activation": keras.activations.serialize(self.activation)}


def _dense(members: int, depth: int, input_shape: tuple, num_classes: int, *, width: int = 64):
    """`harness.models.dense` packed: flatten → depth × PackedDense(width, ReLU) → logits."""
    depth = check_min_depth("dense", depth)
    inputs = keras.Input(shape=(members, *input_shape), name="image")
    x = keras.layers.Reshape((members, -1), name="flatten")(inputs)
    for i in range(1, depth + 1):
        x = PackedDense(members, width, "relu", name=f"dense_{i}")(x)
    logits = PackedDense(members, num_classes, dtype="float32", name="logits")(x)
    return keras.Model(inputs, logits, name=f"dense_{depth}_x{members}")


def build_packed(name: str, depth: int, input_shape: tuple, num_classes: int, members: int,
                 **options) -> keras.Model:
    """Family `name` at `depth`, K = `members` copies packed; ValueError naming the families
    that can be packed for any other."""
    if name not in PACKABLE_FAMILIES:
        raise ValueError(f"model family {name!r} cannot be packed; allowed: "
                         f"{', '.join(PACKABLE_FAMILIES)}")
    if isinstance(members, bool) or int(members) < 1:
        raise ValueError(f"members must be an integer >= 1, got {members!r}")
    return _dense(int(members), depth, tuple(input_shape), int(num_classes), **options)


def load_members(packed: keras.Model, members: list[keras.Model]) -> None:
    """Set slice k of every packed weight to member k's weight (same order and names)."""
    if len(members) != packed.output_shape[1]:
        raise ValueError(f"{len(members)} member models for a pack of {packed.output_shape[1]}")
    for weight, *own in zip(packed.weights, *(m.weights for m in members), strict=True):
        if any(w.path != weight.path or tuple(w.shape) != tuple(weight.shape[1:]) for w in own):
            raise ValueError(f"member weights do not match the packed {weight.path} "
                             f"{tuple(weight.shape)}: {[(w.path, tuple(w.shape)) for w in own]}")
        weight.assign(np.stack([w.numpy() for w in own]))
