"""The tuned-study figures a reader needs beside the tables: success rate vs depth with its Wilson
interval, and every final seed's validation accuracy per epoch (speed or end point?). Read back
from the matplotlib artists of `Analysis.figures()` on the real sqlite MLflow store of
`test_analysis_tuned` (study "bimodal": Adam and L-Adam, depths 3 and 30, 10 final seeds each;
at depth 30 L-Adam trains on 8 of 10 seeds, one of them diverged, Adam on 2 of 10).
"""

from __future__ import annotations

import pytest
from matplotlib.colors import to_hex
from statsmodels.stats.proportion import proportion_confint
from test_analysis_tuned import DEPTHS, EPOCHS, FINAL_SEEDS, STUDY
from test_analysis_tuned import store as tuned_store  # noqa: F401 (fixture)

from harness.analysis.load import load_study
from harness.analysis.report import analyze, write_report
from harness.study.run_schema import STATUS_DIVERGED

SUCCESS = "success_vs_depth-mnist-dense"
CURVES = "final_curves-val_accuracy-mnist-dense"
# (arm, depth): successes of 10 final seeds, as the store plants them
SUCCESSES = {("Adam", 3): 10, ("L-Adam", 3): 10, ("Adam", 30): 2, ("L-Adam", 30): 8}


@pytest.fixture(scope="module")
def analysis(tuned_store):  # noqa: F811 (the imported fixture)
    return analyze(load_study(STUDY, tuned_store))


@pytest.fixture(scope="module")
def figures(analysis):
    return analysis.figures()


def test_report_writes_and_lists_both_figures(analysis, tmp_path):
    write_report(analysis, tmp_path)
    for name in (SUCCESS, CURVES):
        for suffix in (".png", ".svg"):
            assert (tmp_path / f"{name}{suffix}").stat().st_size > 0, name + suffix
    report = (tmp_path / "report.md").read_text()
    assert f"![{SUCCESS}]({SUCCESS}.png)" in report
    assert f"![{CURVES}]({CURVES}.png)" in report
    svg = (tmp_path / f"{CURVES}.svg").read_text()
    finals = analysis.study.trials["run_id"]
    assert len(finals) == 2 * len(DEPTHS) * len(FINAL_SEEDS)
    assert all(f'id="{run_id}"' in svg for run_id in finals)  # every final seed is in the file


def test_success_points_are_the_success_rates_with_wilson_error_bars(analysis, figures):
    (ax,) = figures[SUCCESS].axes
    assert ax.get_title() == "adam"
    rates = analysis.tuning.success
    bars = {container.get_label(): container for container in ax.containers}
    assert list(bars) == ["Adam", "L-Adam"]  # baseline first, both twins on the same axes
    for arm, offset in (("Adam", -0.4), ("L-Adam", 0.4)):
        line, _, (segments,) = bars[arm].lines
        own = rates[rates["arm"] == arm].sort_values("depth")
        assert line.get_xdata().tolist() == pytest.approx([d + offset for d in DEPTHS])
        assert line.get_ydata().tolist() == pytest.approx(own["success_rate"].tolist())
        assert line.get_ydata().tolist() == pytest.approx(
            [SUCCESSES[arm, d] / len(FINAL_SEEDS) for d in DEPTHS]
        )
        lows = [segment[0][1] for segment in segments.get_segments()]
        highs = [segment[1][1] for segment in segments.get_segments()]
        assert lows == pytest.approx(own["success_low"].tolist())
        assert highs == pytest.approx(own["success_high"].tolist())
        wilson = [proportion_confint(SUCCESSES[arm, d], 10, 0.05, "wilson") for d in DEPTHS]
        assert lows + highs == pytest.approx([w[0] for w in wilson] + [w[1] for w in wilson])


def test_final_curves_show_every_final_seed_in_its_twins_colour(analysis, figures):
    panels = {ax.get_title(): ax for ax in figures[CURVES].axes}
    assert list(panels) == [f"adam, depth {d}" for d in DEPTHS]  # a row per depth
    trials = analysis.study.trials.set_index("run_id")
    epochs = analysis.study.epochs.set_index("run_id")
    for depth in DEPTHS:
        ax = panels[f"adam, depth {depth}"]
        lines = {line.get_gid(): line for line in ax.get_lines()}
        runs = trials[trials["depth"] == depth]
        assert len(ax.get_lines()) == len(runs) == 2 * len(FINAL_SEEDS)
        assert set(lines) == set(runs.index)  # final runs only, diverged ones included
        legend = {t.get_text(): to_hex(h.get_color()) for t, h in _legend(ax)}
        assert list(legend) == ["Adam", "L-Adam"] and len(set(legend.values())) == 2
        for run_id, line in lines.items():
            assert to_hex(line.get_color()) == legend[trials.loc[run_id, "arm"]]
            own = epochs.loc[[run_id]].sort_values("epoch")
            assert line.get_xdata().tolist() == own["epoch"].tolist()
            assert line.get_ydata().tolist() == own["val_accuracy"].tolist()
            dotted = trials.loc[run_id, "status"] == STATUS_DIVERGED
            assert line.get_linestyle() == (":" if dotted else "-")
    # one run checked against the curve the store planted: seed 104 of L-Adam at depth 30
    run_id = trials[(trials["arm"] == "L-Adam") & (trials["depth"] == 30) & (trials["seed"] == 104)]
    (line,) = [ln for ln in panels["adam, depth 30"].get_lines() if ln.get_gid() in run_id.index]
    final = 0.95 + 0.002 * 4
    planted = [final * (1 - 0.3**e) for e in range(1, EPOCHS)] + [final]
    assert line.get_ydata().tolist() == pytest.approx(planted)


def _legend(ax):
    legend = ax.get_legend()
    return zip(legend.get_texts(), legend.legend_handles, strict=True)
