"""Matched learning rates: the 2 × 2 of learning rate × noise that the controls complete.

Where a Langevin arm L chose another learning rate than its plain twin P, a study with
`tuning.matched_lr_controls` also ran, on the same final seeds, P's optimizer at L's choice with
σ = 0 (`control` = "sigma0") and L at P's choice with L's σ (`control` = "plain_lr"). The four
cells, per seed:

                    σ = 0            σ = σ*
    lr_P            P                L[lr=P]
    lr_L            L[sigma=0]       L

give, each paired on seed (gain_s = cell_a,s − cell_b,s, test accuracy with a diverged or failed
run at chance, `metrics.outcome`):
- the noise effect at each learning rate: L[lr=P] − P and L − L[sigma=0];
- the learning-rate effect at each σ: L[sigma=0] − P and L − L[lr=P];
- the tuned-vs-tuned difference L − P, which is exactly noise at lr_P + lr effect at σ*
  (= lr effect at σ = 0 + noise at lr_L) seed by seed: the table says which part it is made of.
Per effect: seeds paired, mean and wins / ties / losses, successes of each cell (test accuracy
above the threshold of `success.thresholds`), and the exact two-sided sign-flip p-value of the
mean (`harness.design.tests.sign_flip_p`). Secondary unless the study declared one of them.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from harness.analysis.metrics import outcome
from harness.analysis.success import SUCCESS_METRIC, thresholds
from harness.design.tests import on_flip_grid, sign_flip_p
from harness.study.run_schema import VARIANT_BASELINE

CONTROL, CONTROL_OF = "control", "control_of"
SIGMA0, PLAIN_LR = "sigma0", "plain_lr"
# (effect, cell a, cell b): gain = a − b; cells: P, L, SIGMA0, PLAIN_LR
EFFECTS = (
    ("noise at the plain lr", PLAIN_LR, "P"),
    ("noise at the Langevin lr", "L", SIGMA0),
    ("lr effect at sigma = 0", SIGMA0, "P"),
    ("lr effect at sigma*", "L", PLAIN_LR),
    ("tuned vs tuned", "L", "P"),
)
COLUMNS = [
    "dataset", "model", "depth", "arm", "effect", "cell", "minus", "n", "mean_gain", "n_wins",
    "n_ties", "n_losses", "successes", "minus_successes", "p_sign_flip",
]  # fmt: skip


def is_control(trials: pd.DataFrame) -> pd.Series:
    """Which trials are matched-learning-rate controls."""
    if CONTROL not in trials:
        return pd.Series(False, index=trials.index)
    return trials[CONTROL].notna() & (trials[CONTROL].astype(str) != "")


def _cells(trials: pd.DataFrame, arm: str) -> dict[str, pd.DataFrame] | None:
    """The four cells of the Langevin arm `arm` (None when its controls did not run)."""
    controls = trials[is_control(trials) & (trials[CONTROL_OF] == arm)]
    mine = trials[(trials["arm_id"] == arm) & ~is_control(trials)]
    if controls.empty or mine.empty:
        return None
    first = mine.iloc[0]
    plain = trials[
        ~is_control(trials)
        & (trials["variant"] == VARIANT_BASELINE)
        & (trials["dataset"] == first["dataset"])
        & (trials["model"] == first["model"])
        & (trials["depth"] == first["depth"])
        & (trials["pair"] == first["pair"])
    ]
    return {
        "L": mine,
        "P": plain,
        SIGMA0: controls[controls[CONTROL] == SIGMA0],
        PLAIN_LR: controls[controls[CONTROL] == PLAIN_LR],
    }


def _by_seed(cell: pd.DataFrame) -> pd.DataFrame:
    return cell.set_index("seed")[["value", "success"]]


def _controlled(finals: pd.DataFrame, threshold: float | None):
    """(Langevin arm, its four cells) of every arm whose controls ran, each run with its
    `value` (test accuracy, a failed run at chance) and `success`."""
    if not is_control(finals).any():
        return
    finals = finals.assign(value=outcome(finals, SUCCESS_METRIC))
    finals = finals.assign(success=finals["value"] > thresholds(finals, threshold))
    for arm in sorted(set(finals.loc[is_control(finals), CONTROL_OF].dropna())):
        cells = _cells(finals, arm)
        if cells is not None:
            yield arm, cells


# the 2 x 2 position of each cell: (learning rate, noise)
CELL_PLACES = {"P": ("plain lr", "sigma = 0"), PLAIN_LR: ("plain lr", "sigma*"),
               SIGMA0: ("Langevin lr", "sigma = 0"), "L": ("Langevin lr", "sigma*")}
CELL_COLUMNS = ["dataset", "model", "depth", "arm", "lr", "noise", "cell", "learning_rate",
                "sigma", "seed", "status", "value", "success"]


def matched_lr_cells(finals: pd.DataFrame, threshold: float | None = None) -> pd.DataFrame:
    """CELL_COLUMNS: every final run of the 2 × 2 of each Langevin arm with controls, placed by
    learning rate (the plain arm's choice or the Langevin arm's) and noise (σ = 0 or σ*);
    `value` is its test accuracy (a diverged or failed run at chance). Empty without controls."""
    rows = []
    for arm, cells in _controlled(finals, threshold):
        for key, (lr, noise) in CELL_PLACES.items():
            for run in cells[key].itertuples():
                rows.append({
                    "dataset": run.dataset, "model": run.model, "depth": run.depth, "arm": arm,
                    "lr": lr, "noise": noise, "cell": run.arm_id,
                    "learning_rate": getattr(run, "learning_rate", np.nan),
                    "sigma": getattr(run, "sigma", np.nan), "seed": run.seed,
                    "status": run.status, "value": run.value, "success": bool(run.success)})
    return pd.DataFrame(rows, columns=CELL_COLUMNS)


def matched_lr_effects(finals: pd.DataFrame, threshold: float | None = None) -> pd.DataFrame:
    """COLUMNS, one row per (Langevin arm with controls, effect); empty without controls."""
    rows = []
    for arm, cells in _controlled(finals, threshold):
        first = cells["L"].iloc[0]
        names = {"L": arm, "P": _name(cells["P"]), SIGMA0: _name(cells[SIGMA0]),
                 PLAIN_LR: _name(cells[PLAIN_LR])}
        for effect, a, b in EFFECTS:
            paired = _by_seed(cells[a]).join(_by_seed(cells[b]), rsuffix="_b", how="inner")
            gains = (paired["value"] - paired["value_b"]).to_numpy(dtype=float)
            signs = np.sign(on_flip_grid(gains))  # equal accuracies tie despite float noise
            rows.append({
                "dataset": first["dataset"], "model": first["model"], "depth": first["depth"],
                "arm": arm, "effect": effect, "cell": names[a], "minus": names[b],
                "n": len(gains),
                "mean_gain": float(np.mean(gains)) if len(gains) else np.nan,
                "n_wins": int((signs > 0).sum()), "n_ties": int((signs == 0).sum()),
                "n_losses": int((signs < 0).sum()),
                "successes": int(paired["success"].sum()),
                "minus_successes": int(paired["success_b"].sum()),
                "p_sign_flip": sign_flip_p(gains) if len(gains) else np.nan,
            })
    return pd.DataFrame(rows, columns=COLUMNS)


def _name(cell: pd.DataFrame) -> str:
    names = sorted(set(cell["arm_id"].dropna()))
    return names[0] if len(names) == 1 else " / ".join(names) or "(none)"
