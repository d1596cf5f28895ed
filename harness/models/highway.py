"""Highway networks (Srivastava, Greff & Schmidhuber 2015, "Training Very Deep Networks").

Flatten → Dense(width) → depth × Highway(width, ReLU, transform-gate bias −3) → logits, as in the
paper's highway depth sweep. The stem Dense is linear: it only maps the input to the constant
width the highway layers need. Each highway layer computes

    H(x) = ReLU(W_H x + b_H),   T(x) = sigmoid(W_T x + b_T),   y = T(x)·H(x) + (1 − T(x))·x,

with b_T initialised to −3 so that every layer starts close to the identity (carry behaviour).
"""

from __future__ import annotations

import keras
from keras import ops

from harness.models.common import logits_head, model_input
from harness.models.depths import check_min_depth


@keras.saving.register_keras_serializable(package="harness")
class Highway(keras.layers.Layer):
    """One fully connected highway layer; its output width equals its input width."""

    def __init__(self, activation="relu", transform_bias: float = -3.0, **kwargs):
        super().__init__(**kwargs)
        self.activation = keras.activations.get(activation)
        self.transform_bias = float(transform_bias)

    def build(self, input_shape):
        width = int(input_shape[-1])
        self.kernel_h = self.add_weight(
            name="kernel_h", shape=(width, width), initializer="glorot_uniform"
        )
        self.bias_h = self.add_weight(name="bias_h", shape=(width,), initializer="zeros")
        self.kernel_t = self.add_weight(
            name="kernel_t", shape=(width, width), initializer="glorot_uniform"
        )
        self.bias_t = self.add_weight(
            name="bias_t",
            shape=(width,),
            initializer=keras.initializers.Constant(self.transform_bias),
        )

    def call(self, x):
        h = self.activation(ops.matmul(x, self.kernel_h) + self.bias_h)
        t = ops.sigmoid(ops.matmul(x, self.kernel_t) + self.bias_t)
        return t * h + (1.0 - t) * x

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {
            **super().get_config(),
            "activation": keras.activations.serialize(self.activation),
            "transform_bias": self.transform_bias,
        }


def build(
    depth: int,
    input_shape: tuple,
    num_classes: int,
    *,
    width: int = 64,
    transform_bias: float = -3.0,
) -> keras.Model:
    """A highway net with `depth` highway layers of `width` units."""
    depth = check_min_depth("highway", depth)
    inputs = model_input(input_shape)
    x = keras.layers.Flatten(name="flatten")(inputs)
    x = keras.layers.Dense(width, name="stem")(x)
    for i in range(1, depth + 1):
        x = Highway(transform_bias=transform_bias, name=f"highway_{i}")(x)
    return keras.Model(inputs, logits_head(x, num_classes), name=f"highway_{depth}")
