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
import tensorflow as tf

from harness.models.highway import Highway
from harness.packing.layers import PackedConv2D, PackedDense, PackedFlatten, PackedHighway

PACKABLE_FAMILIES = ("dense", "conv_dense", "highway")
# why the other families stay one model per trial: no packed layer computes them exactly
NOT_PACKABLE = {
    "resnet": "its BatchNormalization layers and shortcut additions have no packed layer",
    "densenet": "its BatchNormalization layers and concatenations have no packed layer",
    "vgg": "its BatchNormalization layers have no packed layer",
}


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


# Whole packed trials on the 2-core CPU, graph mode against XLA (benchmarks/packing.py
# --pack-modes graph,xla; dense-20, width 64, batch 512, 3 epochs with validation, test and
# checkpoints; benchmarks/README.md): seconds per pack of K at MEASURED_STEPS training steps.
MEASURED_STEPS = (54, 318)
CPU_PACK_SECONDS = {"dense": {8: {"graph": (11.55, 35.1), "xla": (13.7, 30.8)},
                              16: {"graph": (18.05, 61.4), "xla": (20.2, 48.9)},
                              32: {"graph": (34.85, 130.0), "xla": (34.4, 139.9)}}}


def _family(packed: keras.Model) -> str:
    if any(isinstance(layer, PackedConv2D) for layer in packed.layers):
        return "conv_dense"
    if any(isinstance(layer, PackedHighway) for layer in packed.layers):
        return "highway"
    return "dense"


def xla_compiles(packed: keras.Model, jit_compile, steps: int) -> tuple[bool, str]:
    """(whether a pack's step is XLA-compiled, why) for a trial of `steps` training steps.

    `jit_compile` true or false: as the study says. Under `auto`: yes on a GPU; on a CPU where
    the measured whole-pack times say XLA finishes such a trial sooner. Each mode's time is the
    line through its two measurements (`CPU_PACK_SECONDS`, the pack size nearest K):

        t(steps) = t_1 + (t_2 − t_1) · (steps − s_1) / (s_2 − s_1),

    XLA where t_XLA(steps) < t_graph(steps): its faster step has repaid its longer compiles
    (train and evaluation steps, full and last batch). Dense packs of 8 cross at about 140 steps,
    of 16 at about 90; highway packs stepped slower under XLA and conv + dense packs far slower
    (XLA:CPU's grouped convolution: 50x TensorFlow's time), so they are never compiled on a CPU.
    """
    if isinstance(jit_compile, bool):
        return jit_compile, "jit_compile set in the study"
    if tf.config.list_logical_devices("GPU"):
        return True, "jit_compile auto on a GPU"
    family = _family(packed)
    measured = CPU_PACK_SECONDS.get(family)
    if not measured:
        return False, (f"jit_compile auto: {family} packs step slower under XLA on a CPU "
                       "(benchmarks/README.md)")
    k = int(packed.inputs[0].shape[1])
    nearest = min(measured, key=lambda size: (abs(size - k), size))
    (s1, s2), times = MEASURED_STEPS, measured[nearest]

    def at(mode: str) -> float:
        t1, t2 = times[mode]
        return t1 + (t2 - t1) * (steps - s1) / (s2 - s1)

    pays = at("xla") < at("graph")
    return pays, (f"jit_compile auto: a {family} pack of {nearest} on a CPU took "
                  f"{times['graph'][0]:g} s in graph mode and {times['xla'][0]:g} s under XLA at "
                  f"{s1} steps, {times['graph'][1]:g} s and {times['xla'][1]:g} s at {s2}: at "
                  f"this trial's {steps} steps {'XLA' if pays else 'graph mode'} is faster")
