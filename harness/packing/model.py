"""Packed models: K members of one network as one Keras model.

Input [B, K, H, W, C]: column k holds member k's batch. Output: logits [B, K, classes].
`pack_model` builds the packed model of an unpacked one layer by layer (`layers`: Dense →
PackedDense, Highway → PackedHighway, Conv2D → PackedConv2D, Flatten → PackedFlatten,
MaxPooling2D as it is, on member-major channels), so a packed model has its unpacked family's
layers with the same names, in the same order, and its weights in the same order with the member
axis in front: member k's unpacked weights are slice k of every packed weight (`load_members`),
and Layer Langevin, which counts `model.layers`, selects the same variables by path.

The families that are chains of those layers pack: dense, conv + dense, highway. The residual
nets (resnet, densenet, vgg) do not yet: their BatchNorm, shortcuts and concatenations have no
packed layer.
"""

from __future__ import annotations

import keras
import numpy as np

from harness.models.highway import Highway
from harness.packing import PACKABLE_FAMILIES
from harness.packing.layers import PackedConv2D, PackedDense, PackedFlatten, PackedHighway


def _require(layer, **expected) -> None:
    """ValueError unless `layer` has the expected attribute values (what its packed layer
    computes)."""
    for name, value in expected.items():
        if getattr(layer, name) != value:
            raise ValueError(f"cannot pack layer {layer.name}: its {name} is "
                             f"{getattr(layer, name)!r}, a packed layer's {value!r}")


def _packed_layer(layer, members: int):
    """The packed equivalent of one unpacked layer: same name, same dtype policy."""
    own = {"name": layer.name, "dtype": layer.dtype_policy}
    if isinstance(layer, Highway):
        return PackedHighway(members, layer.activation, **own)
    if isinstance(layer, keras.layers.Dense):
        _require(layer, use_bias=True, kernel_regularizer=None, bias_regularizer=None)
        return PackedDense(members, layer.units, layer.activation, **own)
    if isinstance(layer, keras.layers.Conv2D):
        _require(layer, strides=(1, 1), padding="valid", dilation_rate=(1, 1), groups=1,
                 data_format="channels_last", use_bias=True, kernel_regularizer=None,
                 bias_regularizer=None)
        return PackedConv2D(members, layer.filters, layer.kernel_size, layer.activation, **own)
    if isinstance(layer, keras.layers.MaxPooling2D):
        _require(layer, data_format="channels_last")
        return keras.layers.MaxPooling2D.from_config(layer.get_config())
    if isinstance(layer, keras.layers.Flatten):
        return PackedFlatten(members, **own)
    raise ValueError(f"cannot pack layer {layer.name} ({type(layer).__name__})")


def pack_model(model: keras.Model, members: int) -> keras.Model:
    """K = `members` copies of the chain `model` (each layer feeding the next) as one packed
    model, every weight zero (`load_members` sets them)."""
    inputs = keras.Input(shape=(members, *model.input_shape[1:]), name=model.layers[0].name)
    x = inputs
    for previous, layer in zip(model.layers, model.layers[1:]):
        if layer.input is not previous.output:
            raise ValueError(f"cannot pack {model.name}: layer {layer.name} does not take the "
                             f"output of {previous.name} alone (not a chain of layers)")
        x = _packed_layer(layer, members)(x)
    return keras.Model(inputs, x, name=f"{model.name}_x{members}")


def build_packed(name: str, depth: int, input_shape: tuple, num_classes: int, members: int,
                 **options) -> keras.Model:
    """Family `name` at `depth`, K = `members` copies packed; ValueError naming the families
    that can be packed for any other."""
    from harness.models import build_model

    if name not in PACKABLE_FAMILIES:
        raise ValueError(f"model family {name!r} cannot be packed; allowed: "
                         f"{', '.join(PACKABLE_FAMILIES)}")
    if isinstance(members, bool) or int(members) < 1:
        raise ValueError(f"members must be an integer >= 1, got {members!r}")
    return pack_model(build_model(name, depth, input_shape, num_classes, **options), int(members))


def load_members(packed: keras.Model, members: list[keras.Model]) -> None:
    """Set slice k of every packed weight to member k's weight (same order and names)."""
    if len(members) != packed.output_shape[1]:
        raise ValueError(f"{len(members)} member models for a pack of {packed.output_shape[1]}")
    for weight, *own in zip(packed.weights, *(m.weights for m in members), strict=True):
        if any(w.path != weight.path or tuple(w.shape) != tuple(weight.shape[1:]) for w in own):
            raise ValueError(f"member weights do not match the packed {weight.path} "
                             f"{tuple(weight.shape)}: {[(w.path, tuple(w.shape)) for w in own]}")
        weight.assign(np.stack([w.numpy() for w in own]))
