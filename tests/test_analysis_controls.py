"""The matched-learning-rate 2 × 2 (harness.analysis.controls) on a hand-made final phase:
Adam (lr 5e-3) vs L-Adam (lr 1e-3, σ 1e-3) at depth 40 on MNIST, 4 seeds, and the two controls.

Per seed (test accuracy; 'x' = diverged, counts at chance 0.1):
    Adam            0.90  0.10  0.10  0.90      (the large plain learning rate fails half)
    L-Adam          0.95  0.95  0.95  x         (lr_L, σ*)
    L-Adam[sigma=0] 0.95  0.95  0.95  0.95      (lr_L, σ = 0: the small lr alone trains)
    L-Adam[lr=Adam] 0.90  0.10  0.10  0.90      (lr_P, σ*: the noise changes nothing at lr_P)
So the tuned difference (+0.05, +0.85, +0.85, −0.80) is all learning rate: the noise effect is 0
at lr_P and −0.85 on seed 3 at lr_L."""

from __future__ import annotations

import pandas as pd
import pytest

from harness.analysis.controls import matched_lr_effects

CELLS = {
    ("mnist-dense40-Adam", "baseline", None): [0.90, 0.10, 0.10, 0.90],
    ("mnist-dense40-L-Adam", "langevin", None): [0.95, 0.95, 0.95, None],
    ("mnist-dense40-L-Adam[sigma=0]", "baseline", "sigma0"): [0.95, 0.95, 0.95, 0.95],
    ("mnist-dense40-L-Adam[lr=Adam]", "langevin", "plain_lr"): [0.90, 0.10, 0.10, 0.90],
}


def finals() -> pd.DataFrame:
    rows = []
    for (arm, variant, control), values in CELLS.items():
        for seed, value in zip((3, 4, 5, 6), values):
            rows.append({"dataset": "mnist", "model": "dense", "depth": 40, "arm_id": arm,
                         "variant": variant, "pair": "adam", "seed": seed,
                         "status": "diverged" if value is None else "finished",
                         "test_accuracy": value, "control": control,
                         "control_of": "mnist-dense40-L-Adam" if control else None})
    return pd.DataFrame(rows)


def test_the_2x2_separates_the_noise_from_the_learning_rate():
    effects = matched_lr_effects(finals()).set_index("effect")
    tuned = effects.loc["tuned vs tuned"]
    assert tuned["mean_gain"] == pytest.approx((0.05 + 0.85 + 0.85 - 0.80) / 4)
    assert (tuned["n_wins"], tuned["n_ties"], tuned["n_losses"]) == (3, 0, 1)
    at_plain = effects.loc["noise at the plain lr"]
    assert at_plain["mean_gain"] == 0 and at_plain["n_ties"] == 4 and at_plain["p_sign_flip"] == 1
    assert (at_plain["cell"], at_plain["minus"]) == ("mnist-dense40-L-Adam[lr=Adam]",
                                                     "mnist-dense40-Adam")
    at_langevin = effects.loc["noise at the Langevin lr"]
    assert at_langevin["mean_gain"] == pytest.approx(-0.85 / 4)
    assert (at_langevin["successes"], at_langevin["minus_successes"]) == (3, 4)
    lr = effects.loc["lr effect at sigma = 0"]
    assert lr["mean_gain"] == pytest.approx(0.85 / 2 + 0.05 / 2)
    # the decomposition holds seed by seed, so in the means
    assert tuned["mean_gain"] == pytest.approx(
        at_plain["mean_gain"] + effects.loc["lr effect at sigma*", "mean_gain"])
    assert tuned["mean_gain"] == pytest.approx(lr["mean_gain"] + at_langevin["mean_gain"])
    assert set(effects["n"]) == {4}


def test_no_controls_no_rows():
    plain = finals()
    assert matched_lr_effects(plain[plain["control"].isna()]).empty


def test_every_run_of_the_2x2_is_placed_by_learning_rate_and_noise():
    from harness.analysis.controls import matched_lr_cells

    cells = matched_lr_cells(finals())
    assert len(cells) == 16 and set(cells["arm"]) == {"mnist-dense40-L-Adam"}
    placed = cells.groupby(["lr", "noise"])["cell"].unique().to_dict()
    assert {k: list(v) for k, v in placed.items()} == {
        ("plain lr", "sigma = 0"): ["mnist-dense40-Adam"],
        ("plain lr", "sigma*"): ["mnist-dense40-L-Adam[lr=Adam]"],
        ("Langevin lr", "sigma = 0"): ["mnist-dense40-L-Adam[sigma=0]"],
        ("Langevin lr", "sigma*"): ["mnist-dense40-L-Adam"]}
    means = cells.groupby(["lr", "noise"])["value"].mean()
    assert means["Langevin lr", "sigma*"] == pytest.approx((0.95 * 3 + 0.1) / 4)  # x at chance
    assert means["plain lr", "sigma*"] == means["plain lr", "sigma = 0"] == pytest.approx(0.5)
    assert cells["success"].sum() == 2 + 2 + 4 + 3
    plain = finals()
    assert matched_lr_cells(plain[plain["control"].isna()]).empty


def test_the_2x2_figure_draws_every_run_and_the_means_per_noise_level():
    from harness.analysis.controls import matched_lr_cells
    from harness.analysis.plots import matched_lr_panels

    figures = matched_lr_panels(matched_lr_cells(finals()))
    (name, figure), = figures.items()
    assert name == "matched_lr-mnist-dense"
    (ax,) = figure.axes
    points = [c.get_offsets() for c in ax.collections]
    assert sum(len(p) for p in points) == 16
    crosses = [p for p in points if len(p) == 1]
    assert len(crosses) == 1 and crosses[0][0][1] == pytest.approx(0.1)  # the diverged run
    lines = {line.get_color(): line.get_ydata() for line in ax.get_lines()}
    assert list(lines["tab:grey"]) == pytest.approx([0.5, 0.95])       # σ = 0 at lr_P, lr_L
    assert list(lines["tab:red"]) == pytest.approx([0.5, (0.95 * 3 + 0.1) / 4])
