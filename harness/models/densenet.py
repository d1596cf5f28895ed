"""CIFAR DenseNets (Huang, Liu, van der Maaten & Weinberger 2017, "Densely Connected
Convolutional Networks", the basic variant without bottleneck or compression).

depth L = 3·m + 4: a 3×3 conv with `initial_filters` channels, three dense blocks of m layers
joined by two transitions, and a BN-ReLU-global-average-pool head before the Dense logits.
A dense layer appends k = `growth_rate` feature maps to its input:

    x ← concat(x, conv3×3_k(ReLU(BN(x)))),

and a transition keeps the channel count and halves the resolution:
BN → ReLU → conv1×1 → average-pool 2×2.

The paper's small configuration is depth 22 with growth 5 (3 blocks of 6 layers); the standard
DenseNet-40 (k = 12) has about 1.0 M parameters.
"""

from __future__ import annotations

import keras

from harness.models.common import l2, logits_head, model_input
from harness.models.depths import NUM_BLOCKS, layers_per_block


def _bn_relu_conv(x, filters, kernel, weight_decay, name):
    x = keras.layers.BatchNormalization(name=f"{name}_bn")(x)
    x = keras.layers.ReLU(name=f"{name}_relu")(x)
    return keras.layers.Conv2D(
        filters,
        kernel,
        padding="same",
        use_bias=False,
        kernel_initializer="he_normal",
        kernel_regularizer=l2(weight_decay),
        name=f"{name}_conv",
    )(x)


def build(
    depth: int,
    input_shape: tuple,
    num_classes: int,
    *,
    growth_rate: int = 12,
    initial_filters: int = 16,
    weight_decay: float = 0.0,
) -> keras.Model:
    """DenseNet-`depth` with growth rate k = `growth_rate`."""
    m = layers_per_block(depth)
    inputs = model_input(input_shape)
    x = keras.layers.Conv2D(
        initial_filters,
        3,
        padding="same",
        use_bias=False,
        kernel_initializer="he_normal",
        kernel_regularizer=l2(weight_decay),
        name="stem_conv",
    )(inputs)
    for block in range(1, NUM_BLOCKS + 1):
        for layer in range(1, m + 1):
            name = f"block{block}_layer{layer}"
            y = _bn_relu_conv(x, growth_rate, 3, weight_decay, name)
            x = keras.layers.Concatenate(name=f"{name}_concat")([x, y])
        if block < NUM_BLOCKS:
            name = f"transition{block}"
            x = _bn_relu_conv(x, x.shape[-1], 1, weight_decay, name)
            x = keras.layers.AveragePooling2D(2, name=f"{name}_pool")(x)
    x = keras.layers.BatchNormalization(name="head_bn")(x)
    x = keras.layers.ReLU(name="head_relu")(x)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    return keras.Model(inputs, logits_head(x, num_classes), name=f"densenet_{depth}")
