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

import math

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


# One packed training step at depth 20, width 64, batch 512 on the 2-core CPU, graph mode against
# XLA (benchmarks/README.md, "packed training step"): per pack size K, (graph ms, XLA ms, graph
# first step s, XLA first step s); the first step includes tracing, and XLA's its compiling.
CPU_STEP = {"dense": {8: (130, 97, 2.4, 7.8), 16: (308, 198, 3.3, 8.3)},
            "highway": {8: (274, 473, 5.0, 15.0), 16: (575, 870, 5.4, 16.6)}}


def _family(packed: keras.Model) -> str:
    if any(isinstance(layer, PackedConv2D) for layer in packed.layers):
        return "conv_dense"
    if any(isinstance(layer, PackedHighway) for layer in packed.layers):
        return "highway"
    return "dense"


def xla_compiles(packed: keras.Model, jit_compile, steps: int) -> tuple[bool, str]:
    """(whether a pack's step is XLA-compiled, why) for a trial of `steps` training steps.

    `jit_compile` true or false: as the study says. Under `auto`: yes on a GPU; on a CPU only
    where the measured step times (`CPU_STEP`, the pack size nearest K) say XLA finishes the
    trial sooner, i.e. where its faster step repays its longer compile within the trial:

        steps × (t_graph − t_XLA) > first_XLA − first_graph.

    Measured so: a dense pack of 8 gains from 164 steps on (33 ms a step against 5.4 s more to
    compile), of 16 from 45; highway packs step slower under XLA and conv + dense packs far
    slower (XLA:CPU's grouped convolution: 50x TensorFlow's time), so they never compile.
    """
    if isinstance(jit_compile, bool):
        return jit_compile, "jit_compile set in the study"
    if tf.config.list_logical_devices("GPU"):
        return True, "jit_compile auto on a GPU"
    family = _family(packed)
    k = int(packed.inputs[0].shape[1])
    measured = CPU_STEP.get(family)
    if not measured:
        return False, f"jit_compile auto: {family} packs step slower under XLA on a CPU"
    nearest = min(measured, key=lambda size: (abs(size - k), size))
    graph_ms, xla_ms, graph_first, xla_first = measured[nearest]
    if xla_ms >= graph_ms:
        return False, (f"jit_compile auto: a {family} pack of {nearest} stepped in {xla_ms} ms "
                       f"under XLA against {graph_ms} ms in graph mode on a CPU")
    from_steps = math.ceil((xla_first - graph_first) / ((graph_ms - xla_ms) / 1000))
    pays = steps >= from_steps
    return pays, (f"jit_compile auto: the trial's {steps} steps; XLA's faster step ({xla_ms} "
                  f"against {graph_ms} ms for a {family} pack of {nearest} on a CPU) repays its "
                  f"longer compile ({xla_first} s against {graph_first} s) from {from_steps} "
                  f"steps on")
