"""Figures, one per (dataset, model), built on `matplotlib.figure.Figure` (no pyplot state).

In the first four, every series is a line labelled with its arm (or comparison) and a shaded band
between its ci_low and ci_high, so the plotted data can be read back from `ax.get_lines()` /
`ax.collections` (`success_vs_depth`: from `ax.containers`, one errorbar per arm).
- `metric_vs_depth`: one panel per pair; per arm, the mean metric vs depth with its t interval.
- `gain_vs_depth`: per comparison, the mean paired gain vs depth with its t interval, a dashed
  least-squares line (intercept + slope · depth) and the zero line.
- `curves_by_depth`: the paper's Figure 1 layout, one panel per depth; per arm, the mean curve
  over epochs with its t interval.
- `budget_curves`: a tuned study's expected best validation accuracy vs tuning budget with opda's
  band, a panel per (pair, depth) with the plain and Langevin twins on the same axes.
- `finals_points`: a tuned study's final runs, every seed a point (diverged or failed runs as
  crosses at the chance accuracy they count at), a short bar at each arm's mean, and the success
  threshold; a panel per pair.
- `success_vs_depth`: a tuned study's success rate k / n of the final runs vs depth, per arm with
  its Wilson interval as error bars (both from `success.success_rates`); a panel per pair.
- `final_curves`: a tuned study's final runs, every seed's per-epoch metric as a thin line (its
  `gid` the run_id; diverged or failed runs dotted), a panel per (depth, pair): does the noisy
  twin end higher, or only get there sooner?
In the last three, the twins of a pair sit side by side on the same axes, baseline first, in the
same colour per arm in every panel.
Depth axes carry the depths run as ticks, epoch and budget axes integer ticks; an accuracy axis
reads in percent and a gain in accuracy in percentage points (pp), as the report's tables do,
while the plotted data stay fractions; a title longer than its figure is wrapped. `CAPTIONS` says under each figure of the report what its lines,
bands and markers are. `save` writes each figure as PNG and SVG.
"""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib import rcParams
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import FuncFormatter, MaxNLocator, PercentFormatter

from harness.analysis.depth import TREND_KEYS
from harness.analysis.metrics import is_accuracy, outcome
from harness.study.run_schema import STATUS_FINISHED

PANEL_SIZE = (4.5, 3.5)
TITLE_CHARS_PER_INCH = 11  # what fits across a figure at the default title size
# what the report says under each kind of figure (by the first part of its name)
CAPTIONS = {
    "vs_depth": "Lines: the mean over seeds per arm; shaded bands: 95% t intervals.",
    "gain_vs_depth": ("Lines: the mean paired gain (Langevin − baseline, seed by seed); shaded "
                      "bands: 95% t intervals; dashed: least-squares fit of the gain on depth; "
                      "grey: zero gain."),
    "curves": "Lines: the mean per epoch over seeds per arm; shaded bands: 95% t intervals.",
    "budget": ("Lines: expected best validation accuracy after k tuning points (opda); shaded "
               "bands: opda's confidence band."),
    "finals": ("Points: every final run (crosses: diverged or failed, at chance accuracy); short "
               "bars: each arm's mean; dotted: the success threshold."),
    "success_vs_depth": "Points: successes / final runs; error bars: 95% Wilson intervals.",
    "final_curves": "One line per final run (dotted: diverged or failed), colour per arm.",
    "matched_lr": ("Per Langevin arm whose controls ran: the test accuracy of every final run "
                   "(a point per seed; crosses: diverged or failed, at chance) at the plain "
                   "arm's and the Langevin arm's learning rate, without noise (σ = 0) and with "
                   "the chosen σ*; lines join each noise level's means, so their vertical gap "
                   "is the noise effect at that learning rate."),
}


def caption(name: str) -> str:
    """The caption of the figure called `name` (its kind is one of its dash-separated parts)."""
    return next((CAPTIONS[part] for part in name.split("-") if part in CAPTIONS), "")


def _title(figure: Figure, title: str) -> None:
    """The figure's title, wrapped to its width."""
    width = max(20, int(figure.get_figwidth() * TITLE_CHARS_PER_INCH))
    figure.suptitle("\n".join(textwrap.wrap(title, width)))


def _depth_ticks(ax, depths) -> None:
    """The depths run as the axis' ticks (one depth: one tick, not a range around it)."""
    ticks = sorted({float(d) for d in depths})
    ax.set_xticks(ticks, [f"{t:g}" for t in ticks])


def _y_units(ax, label: str, percent: bool, gain: bool = False) -> None:
    """The y label, with its unit where the values are shares (accuracies, rates): percent, or
    for a gain percentage points, ticks in those units (the data stay fractions)."""
    if not percent:
        ax.set_ylabel(label)
        return
    ax.set_ylabel(f"{label} ({'pp' if gain else '%'})")
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{100 * v:+.3g}") if gain
                                 else PercentFormatter(xmax=1, decimals=0))


def _panels(count: int, title: str) -> tuple[Figure, list]:
    figure = Figure(figsize=(PANEL_SIZE[0] * count, PANEL_SIZE[1]), layout="constrained")
    axes = list(np.atleast_1d(figure.subplots(1, count, squeeze=False)[0]))
    _title(figure, title)
    return figure, axes


def _grid(frame: pd.DataFrame, rows: str, cols: str, title: str) -> tuple[Figure, list]:
    """A figure with a panel per (value of `rows`, value of `cols`) in `frame`, both sorted, and
    its cells [(ax, row value, column value, the rows of `frame` there)]."""
    row_values, col_values = sorted(frame[rows].unique()), sorted(frame[cols].unique())
    figure = Figure(
        figsize=(PANEL_SIZE[0] * len(col_values), PANEL_SIZE[1] * len(row_values)),
        layout="constrained",
    )
    _title(figure, title)
    grid = figure.subplots(len(row_values), len(col_values), squeeze=False)
    cells = [
        (grid[i][j], r, c, frame[(frame[rows] == r) & (frame[cols] == c)])
        for i, r in enumerate(row_values)
        for j, c in enumerate(col_values)
    ]
    return figure, cells


def _colors(labels) -> dict[str, str]:
    """One colour per label, the same in every panel of a figure."""
    cycle = rcParams["axes.prop_cycle"].by_key()["color"]
    return {label: cycle[i % len(cycle)] for i, label in enumerate(dict.fromkeys(labels))}


def _series(ax, x, mean, low, high, label: str, color: str, **style) -> None:
    ax.plot(x, mean, marker="o", label=label, color=color, **style)
    ax.fill_between(x, low, high, color=color, alpha=0.2, linewidth=0)


def _twins(cell: pd.DataFrame) -> list[str]:
    """The arms of one pair's panel, baseline first (ordered by variant)."""
    return list(dict.fromkeys(cell.sort_values("variant", kind="stable")["arm"]))


def _pair_panels(own: pd.DataFrame, title: str):
    """One (dataset, model)'s figure with a panel per optimizer pair (sorted), its colours per
    arm, and its panels [(ax, pair, the rows of `own` there, their arms baseline first)]."""
    pairs = sorted(own["pair"].unique())
    figure, axes = _panels(len(pairs), title)
    panels = []
    for ax, pair in zip(axes, pairs, strict=True):
        cell = own[own["pair"] == pair]
        panels.append((ax, pair, cell, _twins(cell)))
    return figure, _colors(sorted(own["arm"].unique())), panels


def _dodge(i: int, count: int) -> float:
    """x offset (in depth units) of the i-th of `count` arms, so twins at one depth sit apart."""
    return 0.8 * (i - (count - 1) / 2)


def _name(*parts: object) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", "-".join(str(p) for p in parts))


def metric_vs_depth(summary: pd.DataFrame, metric: str) -> dict[str, Figure]:
    """Mean `metric` ± t interval vs depth, per arm; a panel per pair (from `aggregate.summarize`)."""
    figures = {}
    for (dataset, model), frame in summary.groupby(["dataset", "model"], sort=True):
        pairs = list(dict.fromkeys(frame["pair"]))
        figure, axes = _panels(len(pairs), f"{dataset} / {model}: {metric} vs depth")
        colors = _colors(frame["arm"])
        for ax, pair in zip(axes, pairs, strict=True):
            for arm, series in frame[frame["pair"] == pair].groupby("arm", sort=False):
                series = series.sort_values("depth")
                _series(
                    ax,
                    series["depth"].astype(float),
                    series[f"{metric}_mean"],
                    series[f"{metric}_ci_low"],
                    series[f"{metric}_ci_high"],
                    arm,
                    colors[arm],
                )
            ax.set(title=pair, xlabel="depth")
            _y_units(ax, metric, is_accuracy(metric))
            _depth_ticks(ax, frame["depth"])
            ax.legend()
        figures[_name(metric, "vs_depth", dataset, model)] = figure
    return figures


def gain_vs_depth(gains: pd.DataFrame, trend: pd.DataFrame, metric: str) -> dict[str, Figure]:
    """Mean paired gain ± t interval vs depth with its fitted line, per comparison."""
    fits = trend.set_index(TREND_KEYS)
    figures = {}
    for (dataset, model), frame in gains.groupby(["dataset", "model"], sort=True):
        figure, (ax,) = _panels(1, f"{dataset} / {model}: gain in {metric}")
        ax.axhline(0.0, color="grey", linewidth=0.8)
        colors = _colors(frame["arm"])
        for (pair, arm), series in frame.groupby(["pair", "arm"], sort=True):
            series = series.sort_values("depth")
            label = f"{arm} − {series['baseline_arm'].iloc[0]}"
            depths = series["depth"].astype(float)
            _series(
                ax,
                depths,
                series["mean_gain"],
                series["ci_low"],
                series["ci_high"],
                label,
                colors[arm],
            )
            key = (dataset, model, pair, arm)
            if key in fits.index and pd.notna(fits.loc[key, "slope"]):
                row = fits.loc[key]
                ax.plot(
                    depths,
                    row["intercept"] + row["slope"] * depths,
                    linestyle="--",
                    color=colors[arm],
                    label=f"fit {label}",
                )
        ax.set(xlabel="depth")
        _y_units(ax, f"gain in {metric}", is_accuracy(metric), gain=True)
        _depth_ticks(ax, frame["depth"])
        ax.legend()
        figures[_name("gain_vs_depth", dataset, model)] = figure
    return figures


def curves_by_depth(curves: pd.DataFrame, metric: str) -> dict[str, Figure]:
    """Mean curve ± t interval over epochs per arm, a panel per depth (from `curves.learning_curves`)."""
    figures = {}
    for (dataset, model), frame in curves.groupby(["dataset", "model"], sort=True):
        depths = sorted(frame["depth"].unique())
        figure, axes = _panels(len(depths), f"{dataset} / {model}: {metric} per epoch")
        colors = _colors(sorted(frame["arm"].unique()))
        for ax, depth in zip(axes, depths, strict=True):
            for arm, series in frame[frame["depth"] == depth].groupby("arm", sort=True):
                series = series.sort_values("epoch")
                _series(
                    ax,
                    series["epoch"],
                    series["mean"],
                    series["ci_low"],
                    series["ci_high"],
                    arm,
                    colors[arm],
                    markersize=3,
                )
            ax.set(title=f"depth {depth}", xlabel="epoch")
            _y_units(ax, metric, is_accuracy(metric))
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.legend()
        figures[_name("curves", metric, dataset, model)] = figure
    return figures


def budget_curves(curves: pd.DataFrame) -> dict[str, Figure]:
    """Expected best val_accuracy vs budget per arm with its band (from `budget.budget_curves`)."""
    figures = {}
    for (dataset, model), frame in curves.groupby(["dataset", "model"], sort=True):
        title = f"{dataset} / {model}: expected best val_accuracy vs tuning budget"
        figure, cells = _grid(frame, "pair", "depth", title)
        colors = _colors(sorted(frame["arm"].unique()))
        for ax, pair, depth, cell in cells:
            for arm, series in cell.groupby("arm", sort=True):
                series = series.sort_values("budget")
                _series(
                    ax, series["budget"], series["expected_best"], series["band_low"],
                    series["band_high"], arm, colors[arm], markersize=3,
                )  # fmt: skip
            ax.set(title=f"{pair}, depth {depth}", xlabel="tuning budget (points)")
            ax.set(ylim=(0, 1))
            _y_units(ax, "expected best val_accuracy", True)
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            if len(cell):
                ax.legend()
        figures[_name("budget", dataset, model)] = figure
    return figures


def finals_points(finals: pd.DataFrame, thresholds: pd.Series, metric: str) -> dict[str, Figure]:
    """Every final run of `metric` as a point per arm and depth; `thresholds` per trial."""
    frame = finals.assign(value=outcome(finals, metric), threshold=thresholds)
    frame = frame.dropna(subset=["value"])
    figures = {}
    for (dataset, model), own in frame.groupby(["dataset", "model"], sort=True):
        figure, colors, panels = _pair_panels(
            own, f"{dataset} / {model}: {metric} of every final run")
        for ax, pair, cell, arms in panels:
            for i, arm in enumerate(arms):
                runs = cell[cell["arm"] == arm]
                x = runs["depth"].astype(float) + _dodge(i, len(arms))
                ok = runs["status"] == STATUS_FINISHED
                ax.scatter(x[ok], runs["value"][ok], color=colors[arm], label=arm, s=14)
                if (~ok).any():
                    ax.scatter(
                        x[~ok], runs["value"][~ok], color=colors[arm], marker="x", s=24,
                        label=f"{arm} diverged/failed",
                    )  # fmt: skip
                for depth, at in runs.groupby("depth"):
                    center = float(depth) + _dodge(i, len(arms))
                    ax.hlines(at["value"].mean(), center - 0.5, center + 0.5, color=colors[arm])
            for level in sorted(cell["threshold"].unique()):
                ax.axhline(level, color="grey", linestyle=":", linewidth=0.8)
            ax.set(title=pair, xlabel="depth")
            _y_units(ax, metric, is_accuracy(metric))
            _depth_ticks(ax, cell["depth"])
            ax.legend()
        figures[_name("finals", metric, dataset, model)] = figure
    return figures


def success_vs_depth(success: pd.DataFrame) -> dict[str, Figure]:
    """Success rate k / n vs depth per arm, Wilson interval [success_low, success_high] as error
    bars; a panel per pair (from `success.success_rates` on a tuned study's final runs)."""
    figures = {}
    for (dataset, model), own in success.groupby(["dataset", "model"], sort=True):
        figure, colors, panels = _pair_panels(own, f"{dataset} / {model}: success rate vs depth")
        for ax, pair, cell, arms in panels:
            for i, arm in enumerate(arms):
                rates = cell[cell["arm"] == arm].sort_values("depth")
                rate = rates["success_rate"].to_numpy(dtype=float)
                # at k = 0 or k = n a Wilson bound equals the rate up to rounding: clip at 0
                below = np.clip(rate - rates["success_low"].to_numpy(dtype=float), 0, None)
                above = np.clip(rates["success_high"].to_numpy(dtype=float) - rate, 0, None)
                ax.errorbar(
                    rates["depth"].astype(float) + _dodge(i, len(arms)), rate,
                    yerr=[below, above], marker="o", capsize=3, color=colors[arm], label=arm,
                )  # fmt: skip
            ax.set(title=pair, xlabel="depth")
            _y_units(ax, "success rate of the final runs (Wilson)", True)
            ax.set(ylim=(-0.02, 1.02), xticks=sorted(cell["depth"].unique()))
            # below the axes (inside it would hide the points at 0 or 1), two to a row so that
            # the panels' legends do not run into each other
            ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), ncols=min(len(arms), 2))
        figures[_name("success_vs_depth", dataset, model)] = figure
    return figures


def final_curves(epochs: pd.DataFrame, metric: str) -> dict[str, Figure]:
    """Every final run's `metric` per epoch as a thin line (gid = run_id), a panel per (depth, pair)
    (from `Study.epochs` of a tuned study's final trials)."""
    figures = {}
    for (dataset, model), own in epochs.groupby(["dataset", "model"], sort=True):
        figure, cells = _grid(own, "depth", "pair", f"{dataset} / {model}: every final run")
        colors = _colors(sorted(own["arm"].unique()))
        for ax, depth, pair, cell in cells:
            arms = _twins(cell)
            for arm in arms:
                for run_id, run in cell[cell["arm"] == arm].groupby("run_id", sort=True):
                    run = run.sort_values("epoch")
                    ax.plot(
                        run["epoch"], run[metric], color=colors[arm], linewidth=0.8, alpha=0.6,
                        gid=run_id,
                        linestyle="-" if run["status"].iloc[0] == STATUS_FINISHED else ":",
                    )  # fmt: skip
            ax.set(title=f"{pair}, depth {depth}", xlabel="epoch", ylim=(0, 1))
            _y_units(ax, metric, is_accuracy(metric))
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            if arms:
                ax.legend(handles=[Line2D([], [], color=colors[arm], label=arm) for arm in arms])
        figures[_name("final_curves", metric, dataset, model)] = figure
    return figures


def matched_lr_panels(cells: pd.DataFrame) -> dict[str, Figure]:
    """The 2 × 2 of learning rate × noise per Langevin arm with controls (from
    `controls.matched_lr_cells`): a panel per arm, x the two learning rates, a colour per noise
    level, every run a point, the means joined."""
    figures = {}
    for (dataset, model), own in cells.groupby(["dataset", "model"], sort=True):
        arms = sorted(own["arm"].unique())
        figure, axes = _panels(len(arms), f"{dataset} / {model}: learning rate × noise "
                               "(matched-learning-rate controls), test accuracy")
        for ax, arm in zip(axes, arms, strict=True):
            cell = own[own["arm"] == arm]
            ticks = []
            for lr in ("plain lr", "Langevin lr"):
                rates = cell.loc[cell["lr"] == lr, "learning_rate"].dropna().unique()
                ticks.append(f"{lr}\n{rates[0]:.4g}" if len(rates) == 1 else lr)
            for i, (noise, color) in enumerate((("sigma = 0", "tab:grey"), ("sigma*", "tab:red"))):
                runs = cell[cell["noise"] == noise]
                x = (runs["lr"] == "Langevin lr").astype(float) + (i - 0.5) * 0.12
                ok = runs["status"] == STATUS_FINISHED
                label = "σ = 0" if i == 0 else "σ*"
                ax.scatter(x[ok], runs["value"][ok], color=color, s=12, alpha=0.6, label=label)
                ax.scatter(x[~ok], runs["value"][~ok], color=color, marker="x", s=20)
                means = runs.groupby("lr")["value"].mean().reindex(["plain lr", "Langevin lr"])
                ax.plot(np.array([0.0, 1.0]) + (i - 0.5) * 0.12, means.to_numpy(), color=color,
                        marker="D")
            ax.set(title=f"{arm}", xlim=(-0.5, 1.5), ylim=(0, 1.02))
            ax.set_xticks([0, 1], ticks)
            _y_units(ax, "test accuracy", True)
            ax.legend()
        figures[_name("matched_lr", dataset, model)] = figure
    return figures


def save(figures: dict[str, Figure], out_dir: Path) -> list[Path]:
    """Write every figure as `<name>.png` and `<name>.svg` into `out_dir`."""
    paths = []
    for name, figure in figures.items():
        for suffix in (".png", ".svg"):
            path = out_dir / f"{name}{suffix}"
            figure.savefig(path, dpi=120)
            paths.append(path)
    return paths
