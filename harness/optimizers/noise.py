"""Counter-based Gaussian noise: the same numbers on every replica, with and without XLA.

ξ for (seed, stream) comes from Philox-4x32 with key = seed and 128-bit counter
(low, high) = (0, stream): a stream owns every counter with that high word, so two streams never
share random bits. Each uint32 word b becomes one normal by the inverse CDF,

    u = (⌊b / 2⁹⌋ + ½) · 2⁻²³ ∈ [2⁻²⁴, 1 − 2⁻²⁴],     ξ = Φ⁻¹(u)    (|ξ| < 5.4).

Every u is exact in float32 (23 bits + the half), so u never rounds to 0 or 1 and ξ is finite.

Why not `tf.random.stateless_normal`: under XLA TensorFlow derives Philox's key and counter
from the seed differently and turns bits into normals by another transform, so `jit_compile=True`
would change the noise. The raw bits agree; Φ⁻¹ (`tf.math.ndtri`) agrees to ~1e-5 absolute.
"""

from __future__ import annotations

import math

import tensorflow as tf

PHILOX = 1  # TensorFlow's RNG algorithm id for Philox


def philox_normal(shape, seed: int, stream, dtype=tf.float32):
    """Standard normal tensor of static `shape` for the integer key `seed` and tensor `stream`."""
    counter = tf.stack([tf.constant(0, tf.uint64), tf.cast(stream, tf.uint64)])
    bits = tf.raw_ops.StatelessRandomUniformFullIntV2(
        shape=[math.prod(shape)],
        key=tf.constant([seed], tf.uint64),
        counter=counter,
        alg=PHILOX,
        dtype=tf.uint32,
    )
    return tf.cast(tf.reshape(bits_to_normal(bits), shape), dtype)


def bits_to_normal(bits):
    """uint32 words → standard normals by Φ⁻¹ of the 23 high bits, centred in their cell."""
    uniform = (tf.cast(tf.bitwise.right_shift(bits, 9), tf.float32) + 0.5) * 2.0**-23
    return tf.math.ndtri(uniform)
