"""CIFAR ResNets (He, Zhang, Ren & Sun 2016, "Deep Residual Learning", section 4.2).

depth = 6n + 2: a 3×3 conv with 16 filters, then three stages of n basic blocks with 16, 32 and
64 filters (the first block of stages 2 and 3 halves the feature map with stride 2), global
average pooling and the Dense logits. A basic block is

    y = ReLU(BN(conv3×3(ReLU(BN(conv3×3(x))))) + shortcut(x)).

Shortcuts that change shape are either "padding" (the paper's option A, parameter-free: subsample
by 2 and zero-pad the new channels; ResNet-20 then has 0.27 M parameters) or "projection"
(option B: 1×1 conv with stride 2 + BN). With `residual=False` the same stack without shortcuts is
the plain net the paper compares against (see `harness.models.vgg`).
"""

from __future__ import annotations

import keras
from keras import ops

from harness.models.common import l2, logits_head, model_input
from harness.models.depths import blocks_per_stage

SHORTCUTS = ("padding", "projection")
STAGE_FILTERS = (16, 32, 64)


@keras.saving.register_keras_serializable(package="harness")
class PaddingShortcut(keras.layers.Layer):
    """Option-A shortcut: keep every `stride`-th pixel, zero-pad channels up to `filters`."""

    def __init__(self, filters: int, stride: int = 2, **kwargs):
        super().__init__(**kwargs)
        self.filters = int(filters)
        self.stride = int(stride)

    def call(self, x):
        x = x[:, :: self.stride, :: self.stride, :]
        extra = self.filters - x.shape[-1]
        return ops.pad(x, [[0, 0], [0, 0], [0, 0], [extra // 2, extra - extra // 2]])

    def compute_output_shape(self, input_shape):
        batch, height, width, _ = input_shape
        shrink = lambda size: None if size is None else -(-size // self.stride)  # noqa: E731
        return (batch, shrink(height), shrink(width), self.filters)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "stride": self.stride}


def _conv(filters, kernel, strides, weight_decay, name):
    return keras.layers.Conv2D(
        filters,
        kernel,
        strides=strides,
        padding="same",
        use_bias=False,
        kernel_initializer="he_normal",
        kernel_regularizer=l2(weight_decay),
        name=name,
    )


def _block(x, filters, strides, name, *, residual, shortcut, weight_decay):
    """One basic block; its layers are created input side first."""
    y = _conv(filters, 3, strides, weight_decay, f"{name}_conv1")(x)
    y = keras.layers.BatchNormalization(name=f"{name}_bn1")(y)
    y = keras.layers.ReLU(name=f"{name}_relu1")(y)
    y = _conv(filters, 3, 1, weight_decay, f"{name}_conv2")(y)
    y = keras.layers.BatchNormalization(name=f"{name}_bn2")(y)
    if residual:
        if strides != 1 or x.shape[-1] != filters:
            if shortcut == "padding":
                x = PaddingShortcut(filters, strides, name=f"{name}_shortcut")(x)
            else:
                x = _conv(filters, 1, strides, weight_decay, f"{name}_shortcut")(x)
                x = keras.layers.BatchNormalization(name=f"{name}_shortcut_bn")(x)
        y = keras.layers.Add(name=f"{name}_add")([y, x])
    return keras.layers.ReLU(name=f"{name}_relu2")(y)


def cifar_stack(
    family: str,
    depth: int,
    input_shape: tuple,
    num_classes: int,
    *,
    residual: bool,
    shortcut: str,
    weight_decay: float,
) -> keras.Model:
    """The 6n+2 CIFAR network, with or without shortcuts."""
    n = blocks_per_stage(family, depth)
    if shortcut not in SHORTCUTS:
        raise ValueError(f"shortcut must be one of {SHORTCUTS}, got {shortcut!r}")
    inputs = model_input(input_shape)
    x = _conv(STAGE_FILTERS[0], 3, 1, weight_decay, "stem_conv")(inputs)
    x = keras.layers.BatchNormalization(name="stem_bn")(x)
    x = keras.layers.ReLU(name="stem_relu")(x)
    for stage, filters in enumerate(STAGE_FILTERS, start=1):
        for block in range(1, n + 1):
            strides = 2 if stage > 1 and block == 1 else 1
            x = _block(
                x,
                filters,
                strides,
                f"stage{stage}_block{block}",
                residual=residual,
                shortcut=shortcut,
                weight_decay=weight_decay,
            )
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    return keras.Model(inputs, logits_head(x, num_classes), name=f"{family}_{depth}")


def build(
    depth: int,
    input_shape: tuple,
    num_classes: int,
    *,
    shortcut: str = "padding",
    weight_decay: float = 0.0,
) -> keras.Model:
    """ResNet-`depth` (6n+2) for CIFAR; `weight_decay` adds L2 on the conv kernels (paper: 1e-4)."""
    return cifar_stack(
        "resnet",
        depth,
        input_shape,
        num_classes,
        residual=True,
        shortcut=shortcut,
        weight_decay=weight_decay,
    )
