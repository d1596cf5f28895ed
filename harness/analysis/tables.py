"""Human-readable tables and sentences from an analysis' frames.

Accuracy metrics are shown in percent (as in the paper), gains in percentage points; an
interval is shown as mean ± half-width of the 95 % t interval, with the number of seeds behind it,
or "too few seeds" below the interval's minimum n (see `intervals`). A bootstrap interval is BCa;
where BCa was undefined and the percentile interval stood in, its cell says "percentile", and
`bootstrap_methods` names what a column holds for its section title.
"""

from __future__ import annotations

import math

import pandas as pd

from harness.analysis.depth import TREND_KEYS
from harness.analysis.intervals import BCA, MIN_N_BOOTSTRAP, MIN_N_T, PERCENTILE
from harness.analysis.metrics import is_accuracy
from harness.study.run_schema import STATUS_DIVERGED, STATUS_FAILED

TABLE_INDEX = ["dataset", "model", "depth"]
TOO_FEW = "too few seeds"


def _percent(metric: str) -> bool:
    return is_accuracy(metric)


def _number(value: float, metric: str, signed: bool = False) -> str:
    if pd.isna(value):
        return "—"
    sign = "+" if signed else ""
    return f"{100 * value:{sign}.2f}" if _percent(metric) else f"{value:{sign}.4g}"


def bootstrap_methods(methods: pd.Series) -> str:
    """What a column of bootstrap intervals holds: "BCa", or BCa with percentile where marked."""
    if (methods == PERCENTILE).any():
        return f"{BCA}; {PERCENTILE} where marked (BCa undefined)"
    return BCA


def _marked(interval: str, method: str) -> str:
    return f"{interval} {PERCENTILE}" if method == PERCENTILE else interval


def _p(value: float) -> str:
    return "—" if pd.isna(value) else f"{value:.3g}"


def _estimate(mean, low, high, n, metric: str, signed: bool = False) -> str:
    """ "m ± h" for a symmetric interval, "m [low, high]" for one clipped at a bound, "m (too few
    seeds)" below the t interval's minimum n."""
    text = _number(mean, metric, signed)
    if pd.isna(low):
        return f"{text} ({TOO_FEW})" if 0 < n < MIN_N_T else text
    if math.isclose(mean - low, high - mean, rel_tol=1e-9, abs_tol=1e-12):
        return f"{text} ± {_number(high - mean, metric)}"
    return f"{text} [{_number(low, metric, signed)}, {_number(high, metric, signed)}]"


def _cell(row: pd.Series, metric: str) -> str:
    n = row[f"{metric}_n"]
    text = _estimate(
        row[f"{metric}_mean"], row[f"{metric}_ci_low"], row[f"{metric}_ci_high"], n, metric
    )
    outcomes = [f"n={n}"] + [
        f"{row[f'n_{status}']} {status}"
        for status in (STATUS_DIVERGED, STATUS_FAILED)
        if row[f"n_{status}"]
    ]
    return f"{text} ({', '.join(outcomes)})"


def paper_table(summary: pd.DataFrame, metric: str) -> pd.DataFrame:
    """The paper's table with seeds: a row per (dataset, model, depth), a column per arm (each
    baseline followed by its Langevin twins), cells "mean ± CI half-width (n=…, k diverged, k failed)";
    diverged and failed runs are in the mean at chance accuracy (accuracy metrics)."""
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
    """One row per comparison: n paired seeds, mean gain ± t half-width, the bootstrap interval, the
    Wilcoxon p-value (raw and Holm across depths) and the t-test p-value, wins / ties / losses,
    how many paired runs diverged or failed on each side (at chance accuracy), and the notes."""
    unit = " (pp)" if _percent(metric) else ""
    return pd.DataFrame(
        {
            **{key: gains[key] for key in TABLE_INDEX},
            "comparison": gains["arm"] + " − " + gains["baseline_arm"],
            "n": gains["n_pairs"],
            f"gain{unit}": [
                _estimate(row.mean_gain, row.ci_low, row.ci_high, row.n_pairs, metric, signed=True)
                for row in gains.itertuples()
            ],
            "bootstrap CI": [
                _marked(_interval(row.boot_low, row.boot_high, metric, True), row.boot_method)
                for row in gains.itertuples()
            ],
            "p Wilcoxon": gains["p_wilcoxon"].map(_p),
            "p Holm": gains["p_wilcoxon_holm"].map(_p),
            "p t-test": gains["p_ttest"].map(_p),
            "W/T/L": [f"{row.n_wins}/{row.n_ties}/{row.n_losses}" for row in gains.itertuples()],
            "diverged/failed (base, Langevin)": [
                f"{row.n_failed_baseline}, {row.n_failed_langevin}" for row in gains.itertuples()
            ],
            "note": [
                "; ".join(filter(None, parts))
                for parts in zip(gains["note"], gains["unpaired"], strict=True)
            ],
        }
    )


LEAD_TITLE = ("In short: each Langevin arm against its baseline at the deepest depth (no test "
              "was declared before the data: descriptions, not verdicts)")


def _count(n: int, noun: str) -> str:
    """"1 win", "2 wins", "1 loss", "0 losses"."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}{'es' if noun.endswith('s') else 's'}"


def lead_sentences(gains: pd.DataFrame, metric: str) -> list[str]:
    """The answer first: per comparison, its deepest depth's paired gain in plain words, with
    its 95% t interval (and bootstrap interval where there is one), the wins / ties / losses and
    what the interval says."""
    unit = " pp" if _percent(metric) else ""
    sentences = []
    for _, group in gains.groupby(TREND_KEYS, sort=True):
        row = group.sort_values("depth").iloc[-1]
        head = (f"{row['dataset']}/{row['model']} depth {row['depth']}: {row['arm']} − "
                f"{row['baseline_arm']} in {metric}")
        if pd.isna(row["mean_gain"]):
            sentences.append(f"{head}: no seed with a value on both sides.")
            continue
        gain = f"{_number(row['mean_gain'], metric, True)}{unit}"
        record = (f"{_count(row['n_wins'], 'win')} / {_count(row['n_ties'], 'tie')} / "
                  f"{_count(row['n_losses'], 'loss')} over {_count(row['n_pairs'], 'seed')}")
        if pd.isna(row["ci_low"]):
            sentences.append(f"{head}: {gain}, {record}; {TOO_FEW} for an interval.")
            continue
        interval = (f"95% t interval [{_number(row['ci_low'], metric, True)}, "
                    f"{_number(row['ci_high'], metric, True)}]")
        if not pd.isna(row["boot_low"]):
            interval += (f", bootstrap [{_number(row['boot_low'], metric, True)}, "
                         f"{_number(row['boot_high'], metric, True)}]")
        if row["ci_low"] > 0:
            says = f"{row['arm']} is higher at this depth"
        elif row["ci_high"] < 0:
            says = f"{row['arm']} is lower at this depth"
        else:
            says = "the interval holds 0: no difference shown at these seeds"
        sentences.append(f"{head}: {gain} ({interval}), {record}; {says}.")
    return sentences


def depth_claims(trend: pd.DataFrame, gains: pd.DataFrame, metric: str) -> list[str]:
    """One sentence per comparison: the slope of the gain with depth and the onset depth."""
    baseline_of = gains.drop_duplicates(["pair", "arm"]).set_index(["pair", "arm"])["baseline_arm"]
    unit = " pp" if _percent(metric) else ""
    sentences = []
    for _, row in trend.iterrows():
        head = f"{row['arm']} vs {baseline_of[(row['pair'], row['arm'])]} on {row['dataset']}/{row['model']} (depths {row['depths']})"
        if "," not in row["depths"]:
            slope = "one depth only, no slope"
        elif pd.isna(row["slope"]):
            slope = (
                f"{TOO_FEW} with two or more depths for a slope (n={row['n_seeds']} < {MIN_N_T})"
            )
        else:
            slope = (
                f"gain in {metric} changes by {_number(row['slope'], metric, True)}{unit} per layer "
                f"(95% CI [{_number(row['slope_ci_low'], metric, True)}, {_number(row['slope_ci_high'], metric, True)}], "
                f"p={_p(row['slope_p'])}, per-seed slopes, n={row['n_seeds']} seeds)"
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


def continuation_notes(found: pd.DataFrame) -> list[str]:
    """One sentence per pair of arms that continue one another (`load.continuations`)."""
    return [
        f"{row.arms} at {row.dataset}/{row.model} depth {row.depth}: seeds {row.seeds} ran for "
        f"{row.epochs} epochs with the same per-epoch metrics over their first "
        f"{row.shared_epochs} epochs: a continuation of the same seeds, not a replication"
        for row in found.itertuples()
    ]


def markdown_table(frame: pd.DataFrame) -> str:
    """A GitHub pipe table (no `tabulate` needed)."""

    def cells(values) -> str:
        return "| " + " | ".join(str(v).replace("|", "\\|") for v in values) + " |"

    lines = [cells(frame.columns), "|" + "---|" * len(frame.columns)]
    lines += [cells(row) for row in frame.itertuples(index=False)]
    return "\n".join(lines)


def _interval(low, high, metric: str = "test_accuracy", signed: bool = False) -> str:
    if pd.isna(low):
        return "—"
    return f"[{_number(low, metric, signed)}, {_number(high, metric, signed)}]"


def success_table(success: pd.DataFrame) -> pd.DataFrame:
    """Per arm: successes k/n, rate with its Wilson interval, accuracy given success with its
    bootstrap interval ("too few seeds" below MIN_N_BOOTSTRAP successes), all in percent."""
    return pd.DataFrame(
        {
            **{key: success[key] for key in TABLE_INDEX},
            "arm": success["arm"],
            "trained": [
                f"{k}/{n}" for k, n in zip(success["n_success"], success["n"], strict=True)
            ],
            "rate (%)": success["success_rate"].map(lambda v: _number(v, "test_accuracy")),
            "Wilson CI": [
                _interval(lo, hi)
                for lo, hi in zip(success["success_low"], success["success_high"], strict=True)
            ],
            "accuracy | trained (%)": success["acc_given_success"].map(
                lambda v: _number(v, "test_accuracy")
            ),
            "bootstrap CI": [
                _marked(_interval(row.acc_low, row.acc_high), row.acc_method)
                if row.n_success >= MIN_N_BOOTSTRAP
                else f"{TOO_FEW} (k={row.n_success} < {MIN_N_BOOTSTRAP})"
                for row in success.itertuples()
            ],
        }
    )


def declared_table(declared: pd.DataFrame) -> pd.DataFrame:
    """Per declared hypothesis: verdict, estimate (pp) with its interval, p against its
    group-sequential threshold, the look that decided it, seeds and power at those seeds."""
    return pd.DataFrame(
        {
            "hypothesis": declared["hypothesis"],
            "cells": declared["langevin_cell"] + " − " + declared["baseline_cell"],
            "verdict": declared["verdict"],
            "estimate (pp)": [
                f"{_number(row.estimate, 'test_accuracy', signed=True)} "
                f"{_interval(row.low, row.high, signed=True)}"
                for row in declared.itertuples()
            ],
            "interval": declared["interval"],
            "p / threshold": [f"{_p(row.p_value)} / {row.threshold:.3g}"
                              for row in declared.itertuples()],
            "decided at look": [
                f"{int(row.look)} of {row.looks_taken} taken" if pd.notna(row.look)
                else f"open after {row.looks_taken}" for row in declared.itertuples()
            ],
            "seeds": declared["seeds"],
            "power at these seeds": declared["power_at_seeds"].map(lambda v: f"{v:.2f}"),
        }
    )


def matched_lr_table(effects: pd.DataFrame) -> pd.DataFrame:
    """Per Langevin arm with controls and effect: cell − cell, mean gain (pp), wins / ties /
    losses, successes of each cell, exact sign-flip p."""
    return pd.DataFrame(
        {
            **{key: effects[key] for key in TABLE_INDEX},
            "effect": effects["effect"],
            "cells": effects["cell"] + " − " + effects["minus"],
            "mean gain (pp)": effects["mean_gain"].map(
                lambda v: _number(v, "test_accuracy", signed=True)),
            "W/T/L": [f"{r.n_wins}/{r.n_ties}/{r.n_losses}" for r in effects.itertuples()],
            "trained": [f"{r.successes}/{r.n} vs {r.minus_successes}/{r.n}"
                        for r in effects.itertuples()],
            "p sign-flip": effects["p_sign_flip"].map(_p),
        }
    )


def twins_table(twins: pd.DataFrame) -> pd.DataFrame:
    """Per Langevin arm: its successes and its baseline twin's, the difference in rate (pp) with
    its Newcombe interval, Fisher's exact p-value, and on the seeds both ran the discordant seeds
    (Langevin only / baseline only) with the exact McNemar p-value."""
    return pd.DataFrame(
        {
            **{key: twins[key] for key in TABLE_INDEX},
            "comparison": twins["arm"] + " − " + twins["baseline_arm"],
            "trained": [
                f"{row.n_success}/{row.n} vs {row.baseline_n_success}/{row.baseline_n}"
                for row in twins.itertuples()
            ],
            "rate difference (pp)": [
                f"{_number(row.rate_difference, 'test_accuracy', signed=True)} "
                f"{_interval(row.diff_low, row.diff_high, signed=True)}"
                for row in twins.itertuples()
            ],
            "p Fisher": twins["p_fisher"].map(_p),
            "seed pairs: L only / B only": [
                f"{row.langevin_only} / {row.baseline_only} of {row.n_seed_pairs}"
                for row in twins.itertuples()
            ],
            "p McNemar (seed pairs)": twins["p_mcnemar"].map(_p),
        }
    )


def success_trend_table(trend: pd.DataFrame) -> pd.DataFrame:
    """Per Langevin arm: depths, runs and seeds behind the logistic fit, the interaction (log-odds
    per layer) with its interval, p, the covariance used, and why there is none."""
    return pd.DataFrame(
        {
            "dataset": trend["dataset"],
            "model": trend["model"],
            "comparison": trend["arm"] + " − " + trend["baseline_arm"],
            "depths": trend["depths"],
            "runs": trend["n_runs"],
            "seeds": trend["n_seeds"],
            "interaction (log-odds / layer)": [
                f"{_number(row.interaction, 'log-odds', True)} "
                f"{_interval(row.ci_low, row.ci_high, 'log-odds', True)}"
                if pd.notna(row.interaction)
                else "—"
                for row in trend.itertuples()
            ],
            "p": trend["p"].map(_p),
            "covariance": trend["covariance"],
            "note": trend["note"],
        }
    )


def choices_table(choices: pd.DataFrame) -> pd.DataFrame:
    """Per arm and tuned hyperparameter: the chosen value, its range and position, the edge flag."""
    return pd.DataFrame(
        {
            "arm": choices["arm_id"],
            "hyper": choices["hyper"],
            "chosen": choices["chosen"].map("{:.4g}".format),
            "range": [
                f"[{lo:g}, {hi:g}]{' log' if log else ''}"
                for lo, hi, log in zip(choices["low"], choices["high"], choices["log"], strict=True)
            ],
            "position": choices["position"].map("{:.2f}".format),
            "at edge": choices["at_edge"].map({True: "YES", False: ""}),
            "val score": choices["chosen_score"].map(lambda v: _number(v, "val_accuracy")),
        }
    )


def budget_table(curves: pd.DataFrame) -> pd.DataFrame:
    """Per arm: expected best validation accuracy (%) of 1, K/2 and K tuning points (K = the arm's
    scored points), each with its band."""
    rows = []
    for (arm_id, depth), curve in curves.groupby(["arm_id", "depth"], sort=True):
        k = int(curve["budget"].max())
        row = {"depth": depth, "arm": arm_id, "K": k}
        for label, n in (("best of 1", 1), ("best of K/2", max(1, k // 2)), ("best of K", k)):
            at = curve[curve["budget"] == n].iloc[0]
            row[label] = (
                f"{_number(at['expected_best'], 'val_accuracy')} "
                f"{_interval(at['band_low'], at['band_high'], 'val_accuracy')}"
            )
        rows.append(row)
    return pd.DataFrame(rows)
