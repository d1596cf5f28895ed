"""Plain CIFAR nets: the ResNet of `harness.models.resnet` without its shortcuts.

He et al. (2016) compare ResNets against exactly these "plain" 6n+2 stacks (3×3 convs, 16/32/64
filters, BN, ReLU, global average pooling); the paper uses them as its no-residual control.
"""

from __future__ import annotations

import keras

from harness.models.resnet import cifar_stack


def build(
    depth: int, input_shape: tuple, num_classes: int, *, weight_decay: float = 0.0
) -> keras.Model:
    """A plain (no-skip) 6n+2 conv net."""
    return cifar_stack(
        "vgg",
        depth,
        input_shape,
        num_classes,
        residual=False,
        shortcut="padding",
        weight_decay=weight_decay,
    )
