"""Figures, one per (dataset, model), built on `matplotlib.figure.Figure` (no pyplot state).

Every series is a line labelled with its arm (or comparison) and a shaded band between its
ci_low and ci_high, so the plotted data can be read back from `ax.get_lines()` / `ax.collections`.
- `metric_vs_depth`: one panel per pair; per arm, the mean metric vs depth with its t interval.
- `gain_vs_depth`: per comparison, the mean paired gain vs depth with its t interval, a dashed
  least-squares line (intercept + slope · depth) and the zero line.
- `curves_by_depth`: the paper's Figure 1 layout, one panel per depth; per arm, the mean curve
  over epochs with its t interval.
`save` writes each figure as PNG and SVG.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib import rcParams
from matplotlib.figure import Figure

from harness.analysis.depth import TREND_KEYS

PANEL_SIZE = (4.5, 3.5)


def _panels(count: int, title: str) -> tuple[Figure, list]:
    figure = Figure(figsize=(PANEL_SIZE[0] * count, PANEL_SIZE[1]), layout="constrained")
    axes = list(np.atleast_1d(figure.subplots(1, count, squeeze=False)[0]))
    figure.suptitle(title)
    return figure, axes


def _colors(labels) -> dict[str, str]:
    """One colour per label, the same in every panel of a figure."""
    cycle = rcParams["axes.prop_cycle"].by_key()["color"]
    return {label: cycle[i % len(cycle)] for i, label in enumerate(dict.fromkeys(labels))}


def _series(ax, x, mean, low, high, label: str, color: str, **style) -> None:
    ax.plot(x, mean, marker="o", label=label, color=color, **style)
    ax.fill_between(x, low, high, color=color, alpha=0.2, linewidth=0)


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
            ax.set(title=pair, xlabel="depth", ylabel=metric)
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
        ax.set(xlabel="depth", ylabel=f"gain in {metric}")
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
            ax.set(title=f"depth {depth}", xlabel="epoch", ylabel=metric)
            ax.legend()
        figures[_name("curves", metric, dataset, model)] = figure
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
