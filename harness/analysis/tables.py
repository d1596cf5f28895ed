"""Human-readable tables and sentences from an analysis' frames.

Accuracy-like metrics are shown in percent (as in the paper), gains in percentage points; an
interval is shown as mean ± half-width of the 95 % t interval, with the number of seeds behind it.
"""

from __future__ import annotations

import math

import pandas as pd

from harness.analysis.depth import TREND_KEYS
from harness.study.run_schema import STATUS_DIVERGED, STATUS_FAILED

TABLE_INDEX = ["dataset", "model", "depth"]


def _percent(metric: str) -> bool:
    return "accuracy" in metric


def _number(value: float, metric: str, signed: bool = False) -> str:
    if pd.isna(value):
        return "—"
    sign = "+" if signed else ""
    return f"{100 * value:{sign}.2f}" if _percent(metric) else f"{value:{sign}.4g}"


def _p(value: float) -> str:
    return "—" if pd.isna(value) else f"{value:.3g}"


def _cell(row: pd.Series, metric: str) -> str:
    n = row[f"{metric}_n"]
    mean, low = row[f"{metric}_mean"], row[f"{metric}_ci_low"]
    text = _number(mean, metric)
    if not pd.isna(low):
        text += f" ± {_number(mean - low, metric)}"
    outcomes = [f"n={n}"] + [
        f"{row[f'n_{status}']} {status}"
        for status in (STATUS_DIVERGED, STATUS_FAILED)
        if row[f"n_{status}"]
    ]
    return f"{text} ({', '.join(outcomes)})"


def paper_table(summary: pd.DataFrame, metric: str) -> pd.DataFrame:
    """The paper's table with seeds: a row per (dataset, model, depth), a column per arm (each
    baseline followed by its Langevin twins), cells "mean ± CI half-width (n=…, k diverged, k failed)"."""
    cells = summary.assign(cell=[_cell(row, metric) for _, row in summary.iterrows()])
    arms = list(dict.fromkeys(summary["arm"]))
    table = (
        cells.pivot(index=TABLE_INDEX, columns="arm", values="cell")
        .reindex(columns=arms)
        .fillna("")
    )
    table.columns.name = None
    return table.reset_index()


def gains_table(gains: pd.DataFrame, metric: str) -> pd.DataFrame:
    """One row per comparison: n paired seeds, mean gain ± CI half-width, t and bootstrap intervals,
    Wilcoxon and t p-values, wins, and the notes (too few seeds, unpaired seeds)."""
    unit = " (pp)" if _percent(metric) else ""
    return pd.DataFrame(
        {
            **{key: gains[key] for key in TABLE_INDEX},
            "comparison": gains["arm"] + " − " + gains["baseline_arm"],
            "n": gains["n_pairs"],
            f"gain{unit}": [
                _number(m, metric, signed=True)
                + ("" if pd.isna(lo) else f" ± {_number(m - lo, metric)}")
                for m, lo in zip(gains["mean_gain"], gains["ci_low"], strict=True)
            ],
            "bootstrap CI": [
                "—"
                if pd.isna(lo)
                else f"[{_number(lo, metric, True)}, {_number(hi, metric, True)}]"
                for lo, hi in zip(gains["boot_low"], gains["boot_high"], strict=True)
            ],
            "p Wilcoxon": gains["p_wilcoxon"].map(_p),
            "p t-test": gains["p_ttest"].map(_p),
            "wins": [
                "—" if pd.isna(rate) else f"{round(rate * n)}/{n}"
                for rate, n in zip(gains["win_rate"], gains["n_pairs"], strict=True)
            ],
            "note": [
                "; ".join(filter(None, parts))
                for parts in zip(gains["note"], gains["unpaired"], strict=True)
            ],
        }
    )


def depth_claims(trend: pd.DataFrame, gains: pd.DataFrame, metric: str) -> list[str]:
    """One sentence per comparison: the slope of the gain with depth and the onset depth."""
    baseline_of = gains.drop_duplicates(["pair", "arm"]).set_index(["pair", "arm"])["baseline_arm"]
    unit = " pp" if _percent(metric) else ""
    sentences = []
    for _, row in trend.iterrows():
        head = f"{row['arm']} vs {baseline_of[(row['pair'], row['arm'])]} on {row['dataset']}/{row['model']} (depths {row['depths']})"
        if pd.isna(row["slope"]):
            slope = f"too few paired seeds or depths for a slope (n={row['n_pairs']})"
        else:
            slope = (
                f"gain in {metric} changes by {_number(row['slope'], metric, True)}{unit} per layer "
                f"(95% CI [{_number(row['slope_ci_low'], metric, True)}, {_number(row['slope_ci_high'], metric, True)}], "
                f"p={_p(row['slope_p'])}, n={row['n_pairs']})"
            )
        deepest = (
            gains[(gains[TREND_KEYS] == row[TREND_KEYS]).all(axis=1)].sort_values("depth").iloc[-1]
        )
        if not math.isnan(row["onset_depth"]):
            onset = f"the gain's CI is above 0 from depth {int(row['onset_depth'])} on"
        elif pd.isna(deepest["ci_low"]):
            onset = f"no CI at the deepest depth ({deepest['depth']}: {deepest['note']})"
        else:
            onset = f"the gain's CI is not above 0 at the deepest depth ({deepest['depth']})"
        sentences.append(f"{head}: {slope}; {onset}.")
    return sentences


def markdown_table(frame: pd.DataFrame) -> str:
    """A GitHub pipe table (no `tabulate` needed)."""

    def cells(values) -> str:
        return "| " + " | ".join(str(v).replace("|", "\\|") for v in values) + " |"

    lines = [cells(frame.columns), "|" + "---|" * len(frame.columns)]
    lines += [cells(row) for row in frame.itertuples(index=False)]
    return "\n".join(lines)
