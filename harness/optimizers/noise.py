"""Counter-based Gaussian noise: the same numbers on every replica, with and without XLA.

ξ for (seed, stream) comes from Philox-4x32 with key = seed and 128-bit counter
(low, high) = (0, stream): a stream owns every counter with that high word, so two streams never
share random bits. The uint32 words become normals by Box–Muller,

    u = (⌊b / 2⁸⌋ + ½) · 2⁻²⁴ ∈ (0, 1),     r = √(−2 ln u₁),     ξ = (r cos 2πu₂, r sin 2πu₂).

Why not `tf.random.stateless_normal`: under XLA TensorFlow turns the (identical) Philox bits into
normals by another transform, so `jit_compile=True` would change the noise; the raw bits agree.
"""

from __future__ import annotations

import math

import tensorflow as tf

PHILOX = 1  # TensorFlow's RNG algorithm id for Philox


def philox_normal(shape, seed: int, stream, dtype=tf.float32):
    """Standard normal tensor of static `shape` for the integer key `seed` and tensor `stream`."""
    size = math.prod(shape)
    pairs = (size + 1) // 2
    counter = tf.stack([tf.constant(0, tf.uint64), tf.cast(stream, tf.uint64)])
    bits = tf.raw_ops.StatelessRandomUniformFullIntV2(
        shape=[2 * pairs],
        key=tf.constant([seed], tf.uint64),
        counter=counter,
        alg=PHILOX,
        dtype=tf.uint32,
    )
    uniform = (tf.cast(tf.bitwise.right_shift(bits, 8), tf.float32) + 0.5) * 2.0**-24
    u1, u2 = uniform[:pairs], uniform[pairs:]
    radius = tf.sqrt(-2.0 * tf.math.log(u1))
    angle = 2.0 * math.pi * u2
    normal = tf.concat([radius * tf.cos(angle), radius * tf.sin(angle)], axis=0)[:size]
    return tf.cast(tf.reshape(normal, shape), dtype)
