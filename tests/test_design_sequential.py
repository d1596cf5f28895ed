"""Group-sequential boundaries (harness.design.sequential) against the closed form of the first
look, a published simulation, and a seeded simulation of Brownian paths of our own."""

import numpy as np
import pytest
import scipy.stats

from harness.design.sequential import SPENDING, boundaries, nominal_alphas, spent

FOUR_LOOKS = [0.25, 0.5, 0.75, 1.0]


def crossed_by_look(fractions, bounds, paths=1_000_000, seed=0):
    """Fraction of simulated Brownian paths with |W(t_j)| / √t_j ≥ c_j at some look j ≤ k, per k."""
    rng = np.random.default_rng(seed)
    fractions = np.asarray(fractions)
    steps = np.diff(fractions, prepend=0.0)
    brownian = np.cumsum(rng.standard_normal((paths, len(fractions))) * np.sqrt(steps), axis=1)
    crossed = np.abs(brownian / np.sqrt(fractions)) >= bounds
    return np.mean(np.logical_or.accumulate(crossed, axis=1), axis=0)


def test_obrien_fleming_four_looks_published_values():
    bounds = boundaries(FOUR_LOOKS, 0.05)
    assert spent(FOUR_LOOKS, 0.05)[0] == pytest.approx(8.9e-5, rel=0.01)
    assert bounds[0] == pytest.approx(scipy.stats.norm.isf(spent(FOUR_LOOKS, 0.05)[0] / 2))
    assert bounds[0] == pytest.approx(3.92, abs=5e-3)
    # decision-design.md: a seeded simulation of 4 million paths gives about 2.77, 2.30, 2.04
    assert bounds[1:] == pytest.approx([2.77, 2.30, 2.04], abs=0.02)


@pytest.mark.parametrize("spending", sorted(SPENDING))
@pytest.mark.parametrize("fractions", [FOUR_LOOKS, [0.3, 0.55, 1.0], [0.2, 0.4, 0.6, 0.8, 1.0]])
def test_crossing_probability_by_each_look_is_the_spent_alpha(spending, fractions):
    alpha = 0.05
    bounds = boundaries(fractions, alpha, spending)
    crossed = crossed_by_look(fractions, bounds)
    target = spent(fractions, alpha, spending)
    standard_error = np.sqrt(target * (1 - target) / 1_000_000)
    assert np.all(np.abs(crossed - target) < 4 * standard_error + 2e-5)  # + integration error
    assert np.all(np.diff(target) > 0)


@pytest.mark.parametrize("spending", sorted(SPENDING))
def test_spent_alpha_reaches_alpha_at_the_last_look(spending):
    assert spent(FOUR_LOOKS, 0.05, spending)[-1] == pytest.approx(0.05, rel=1e-12)
    assert spent(FOUR_LOOKS, 0.01, spending)[-1] == pytest.approx(0.01, rel=1e-12)


def test_one_look_is_the_fixed_design():
    assert boundaries([1], 0.05) == pytest.approx([1.959964], abs=1e-6)
    assert nominal_alphas([1], 0.05, "pocock") == pytest.approx([0.05])


def test_nominal_alphas_are_the_boundaries_p_values():
    thresholds = nominal_alphas(FOUR_LOOKS, 0.05)
    assert thresholds == pytest.approx(2 * scipy.stats.norm.sf(boundaries(FOUR_LOOKS, 0.05)))
    assert np.all(np.diff(thresholds) > 0) and thresholds[-1] < 0.05
    pocock = nominal_alphas(FOUR_LOOKS, 0.05, "pocock")
    assert np.ptp(pocock) < 0.002 and pocock[0] > thresholds[0]  # Pocock: nearly flat, spends early


@pytest.mark.parametrize(
    "fractions, alpha, spending, named",
    [([0.5, 0.9], 0.05, "pocock", "exactly 1"), ([0.5, 0.5, 1], 0.05, "pocock", "rise"),
     ([0, 1], 0.05, "pocock", "above 0"), ([1], 1.5, "pocock", "alpha"),
     ([1], 0.05, "haybittle", "'haybittle'")],
)  # fmt: skip
def test_bad_design_is_one_line(fractions, alpha, spending, named):
    with pytest.raises(ValueError) as error:
        boundaries(fractions, alpha, spending)
    assert named in str(error.value) and "\n" not in str(error.value)
