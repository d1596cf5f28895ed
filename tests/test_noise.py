"""The counter-based Gaussian generator behind the Langevin noise."""

import numpy as np
import pytest
import tensorflow as tf

from harness.optimizers.noise import PHILOX, philox_normal, words_to_normal


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
    """No word may give u = 0 or 1 (a uniform rounding to 1.0 once made L-Adam's weights NaN)."""
    extremes = np.array([0, 0, 2**32 - 1, 2**32 - 1, 1, 2**31, 2**32 - 2, 1], np.uint64)
    z = words_to_normal(tf.constant(extremes[0::2] | extremes[1::2] << np.uint64(32))).numpy()
    assert np.all(np.isfinite(z))
    # u = 2⁻²⁴ for word 0: the largest radius √(−2 ln 2⁻²⁴) ≈ 5.77, at angle 2π·2⁻²⁴
    assert z[0] == pytest.approx(np.sqrt(48 * np.log(2)), rel=1e-5) and abs(z[1]) < 1e-4
    # u = 1 − 2⁻²⁴ for the top word: radius √(2·2⁻²⁴), not 0 and not NaN
    assert 0 < np.hypot(z[2], z[3]) == pytest.approx(2**-11.5, rel=1e-2)


def _numpy_box_muller(bits: np.ndarray) -> np.ndarray:
    """The documented transform in float64: u = (⌊b/2⁹⌋ + ½)·2⁻²³, pairs → r cos θ, r sin θ."""
    u = ((bits >> 9).astype(np.float64) + 0.5) * 2.0**-23
    r = np.sqrt(-2 * np.log(u[0::2]))
    theta = 2 * np.pi * u[1::2]
    return np.stack([r * np.cos(theta), r * np.sin(theta)], axis=1).reshape(-1)


def test_normals_are_the_documented_transform_of_the_philox_words():
    seed, stream, size = 4, 29, 1001
    bits = tf.raw_ops.StatelessRandomUniformFullIntV2(
        shape=[size + 1], key=tf.constant([seed], tf.uint64),
        counter=tf.constant([0, stream], tf.uint64), alg=PHILOX, dtype=tf.uint32,
    ).numpy()
    expected = _numpy_box_muller(bits)[:size]
    np.testing.assert_allclose(philox_normal((size,), seed, stream).numpy(), expected,
                               rtol=1e-5, atol=2e-6)


def test_a_prefix_of_a_longer_draw_is_the_shorter_draw():
    """The optimizer draws only up to its last noisy variable: that must not change the numbers
    (beyond the last float32 bit: Eigen's vectorised and scalar log/cos may round differently)."""
    long = philox_normal((1000,), seed=3, stream=8).numpy()
    for size in (1, 2, 7, 500):
        np.testing.assert_allclose(philox_normal((size,), seed=3, stream=8).numpy(),
                                   long[:size], rtol=3e-7, atol=1e-7)


def test_same_numbers_with_and_without_xla_for_a_long_odd_draw():
    stream = tf.Variable(7, dtype=tf.int64)

    def draw():
        return philox_normal((100_001,), seed=2, stream=stream)

    np.testing.assert_allclose(draw().numpy(), tf.function(draw, jit_compile=True)().numpy(),
                               rtol=1e-4, atol=1e-4)
