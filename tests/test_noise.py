"""The counter-based Gaussian generator behind the Langevin noise."""

import numpy as np
import tensorflow as tf

from harness.optimizers.noise import bits_to_normal, philox_normal


def test_is_standard_normal():
    z = philox_normal((300_001,), seed=5, stream=tf.constant(17, tf.int64)).numpy().astype(float)
    n = z.size
    assert abs(z.mean()) < 5 / np.sqrt(n)
    assert abs(z.var() - 1) < 5 * np.sqrt(2 / n)
    for k, expected in [(1, 0.6827), (2, 0.9545), (3, 0.9973)]:
        assert abs(np.mean(np.abs(z) < k) - expected) < 0.004


def test_same_numbers_with_and_without_xla_for_a_dynamic_stream():
    stream = tf.Variable(123, dtype=tf.int64)

    def draw():
        return philox_normal((7, 3), seed=9, stream=stream)

    eager = draw().numpy()
    xla = tf.function(draw, jit_compile=True)().numpy()
    np.testing.assert_allclose(eager, xla, rtol=1e-4, atol=1e-4)


def test_streams_and_seeds_are_independent():
    a = philox_normal((10_000,), seed=1, stream=0).numpy()
    b = philox_normal((10_000,), seed=1, stream=1).numpy()
    c = philox_normal((10_000,), seed=2, stream=0).numpy()
    np.testing.assert_array_equal(a, philox_normal((10_000,), seed=1, stream=0).numpy())
    assert abs(np.corrcoef(a, b)[0, 1]) < 0.05
    assert abs(np.corrcoef(a, c)[0, 1]) < 0.05


def test_extreme_bits_give_finite_normals():
    """The largest word must not round to u = 1 (Φ⁻¹(1) = inf made L-Adam's weights NaN)."""
    extremes = tf.constant([0, 1, 2**31, 2**32 - 2, 2**32 - 1], tf.uint32)
    z = bits_to_normal(extremes).numpy()
    assert np.all(np.isfinite(z))
    assert z[0] == -z[-1] and 5.0 < z[-1] < 5.5
    assert abs(z[2]) < 1e-6
