"""Packed layers: K independent copies of one layer, every weight with a leading member axis K.

Member k's weights are slice k of every weight (`W[k]`, `c[k]`), with the unpacked layer's names
and shapes behind the member axis. A packed tensor holds the K members' activations in one of
two layouts:

- members in front, [B, K, …]: column k is member k's (the packed images [B, K, H, W, C], the
  features of the dense and highway layers [B, K, n]);
- member-major channels, [B, H, W, K·C]: channel k·C + c is member k's channel c. A grouped
  convolution with groups = K keeps each member's channels to its own kernels, and Keras'
  MaxPooling2D, which pools channel by channel, is each member's own pooling unchanged.

Where a layer meets the packed images (rank 5) it lays them out member-major first.
"""

from __future__ import annotations

import math

import keras
import tensorflow as tf
from keras import ops


def member_major(images):
    """[B, K, H, W, C] → [B, H, W, K·C]: channel k·C + c is member k's channel c."""
    _, members, height, width, channels = images.shape
    return ops.reshape(ops.transpose(images, (0, 2, 3, 1, 4)),
                       (-1, height, width, members * channels))


def affine(x, kernel, bias):
    """Every member's affine map at once: y[b, k, :] = x[b, k, :] · W[k] + c[k]."""
    return ops.einsum("bki,kio->bko", x, kernel) + bias


def _zeros(layer: keras.layers.Layer, name: str, shape: tuple):
    # zeros: the weights come from the members' own unpacked models (`model.load_members`)
    return layer.add_weight(name=name, shape=shape, initializer="zeros")


class _Packed(keras.layers.Layer):
    """A layer of K members with an activation (serialised with both)."""

    def __init__(self, members: int, activation=None, **kwargs):
        super().__init__(**kwargs)
        self.members = int(members)
        self.activation = keras.activations.get(activation)

    def get_config(self):
        return {**super().get_config(), "members": self.members,
                "activation": keras.activations.serialize(self.activation)}


@keras.saving.register_keras_serializable(package="harness")
class PackedDense(_Packed):
    """K independent Dense(units) layers side by side: y[:, k] = act(x[:, k] W[k] + c[k])."""

    def __init__(self, members: int, units: int, activation=None, **kwargs):
        super().__init__(members, activation, **kwargs)
        self.units = int(units)

    def build(self, input_shape):
        self.kernel = _zeros(self, "kernel", (self.members, input_shape[-1], self.units))
        self.bias = _zeros(self, "bias", (self.members, self.units))

    def call(self, x):
        return self.activation(affine(x, self.kernel, self.bias))

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.units)

    def get_config(self):
        return {**super().get_config(), "units": self.units}


@keras.saving.register_keras_serializable(package="harness")
class PackedHighway(_Packed):
    """K independent highway layers (`harness.models.highway.Highway`) side by side:

        H = act(x W_H[k] + b_H[k]),  T = sigmoid(x W_T[k] + b_T[k]),  y = T·H + (1 − T)·x

    for x = x[:, k], with the weights in Highway's order (kernel_h, bias_h, kernel_t, bias_t).
    """

    def build(self, input_shape):
        width = input_shape[-1]
        self.kernel_h = _zeros(self, "kernel_h", (self.members, width, width))
        self.bias_h = _zeros(self, "bias_h", (self.members, width))
        self.kernel_t = _zeros(self, "kernel_t", (self.members, width, width))
        self.bias_t = _zeros(self, "bias_t", (self.members, width))

    def call(self, x):
        h = self.activation(affine(x, self.kernel_h, self.bias_h))
        t = ops.sigmoid(affine(x, self.kernel_t, self.bias_t))
        return t * h + (1.0 - t) * x

    def compute_output_shape(self, input_shape):
        return input_shape


@keras.saving.register_keras_serializable(package="harness")
class PackedConv2D(_Packed):
    """K independent Conv2D(filters, kernel) layers (valid padding, stride 1) as one grouped
    convolution on member-major channels (C in, F out per member):

        y[b, i, j, k·F + f] = act(c[k, f] + Σ_{di,dj,c} x[b, i+di, j+dj, k·C + c] W[k, di, dj, c, f])

    W: [K, kh, kw, C, F], c: [K, F]; it runs as `tf.nn.convolution` with the kernel
    [kh, kw, C, K·F] (TensorFlow infers groups = K from the input's K·C channels). Not through
    `keras.ops.conv`: on a CPU Keras compiles a grouped convolution with XLA, whose CPU
    convolutions were 50× slower here than TensorFlow's own.
    """

    def __init__(self, members: int, filters: int, kernel_size, activation=None, **kwargs):
        super().__init__(members, activation, **kwargs)
        self.filters = int(filters)
        self.kernel_size = tuple(int(s) for s in kernel_size)

    def _channels(self, input_shape) -> int:
        """One member's input channels C (of the packed images or of member-major ones)."""
        return input_shape[-1] if len(input_shape) == 5 else input_shape[-1] // self.members

    def build(self, input_shape):
        shape = (*self.kernel_size, self._channels(input_shape), self.filters)
        self.kernel = _zeros(self, "kernel", (self.members, *shape))
        self.bias = _zeros(self, "bias", (self.members, self.filters))

    def call(self, x):
        if len(x.shape) == 5:
            x = member_major(x)
        kernel = ops.reshape(ops.transpose(self.kernel, (1, 2, 3, 0, 4)),
                             (*self.kernel_size, -1, self.members * self.filters))
        y = tf.nn.convolution(x, kernel, padding="VALID")
        return self.activation(y + ops.reshape(self.bias, (-1,)))

    def compute_output_shape(self, input_shape):
        *_, height, width, _ = input_shape
        out = [None if size is None else size - k + 1
               for size, k in zip((height, width), self.kernel_size, strict=True)]
        return (input_shape[0], *out, self.members * self.filters)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "kernel_size": self.kernel_size}


@keras.saving.register_keras_serializable(package="harness")
class PackedFlatten(keras.layers.Layer):
    """Each member's Flatten, [B, K, n] out: from the packed images [B, K, H, W, C] a reshape;
    from member-major channels [B, H, W, K·C] first back to [B, K, H, W, C]. Member k's features
    are in Keras' Flatten order (i, j, c) of its own [H, W, C]."""

    def __init__(self, members: int, **kwargs):
        super().__init__(**kwargs)
        self.members = int(members)

    def call(self, x):
        if len(x.shape) == 4:
            _, height, width, channels = x.shape
            x = ops.transpose(ops.reshape(x, (-1, height, width, self.members,
                                              channels // self.members)), (0, 3, 1, 2, 4))
        return ops.reshape(x, (-1, self.members, self.compute_output_shape(x.shape)[-1]))

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.members, math.prod(input_shape[1:]) // self.members)

    def get_config(self):
        return {**super().get_config(), "members": self.members}
