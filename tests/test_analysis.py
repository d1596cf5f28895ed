"""The analysis against a real MLflow sqlite store holding synthetic trials with planted effects.

Study "growth", dataset mnist, model dense, depths 3/20/30/40, 6 seeds per arm:
- adam: L-Adam − Adam = GAIN[depth] (0 at depth 3, positive from 20 on, growing) plus a
  seed-wise jitter JITTER[seed] · (1 + depth / 40) that sums to 0 at every depth (so each seed has
  its own slope);
- rmsprop: L-RMSprop − RMSprop = jitter only (no effect);
- adadelta: accuracy 0.8 everywhere, 2 seeds at depth 3 (too few for an interval) and 4 at depth
  20, where Adadelta seed 2 failed (no metrics) and L-Adadelta seed 3 diverged (NaN losses, a
  logged accuracy of 0.05); both count at chance accuracy 0.1, their partners finished;
- at depth 30 Adam seed 8 has no L-Adam partner.
Every curve is val_accuracy_e = final · (1 − 0.5^e) over 5 epochs, epoch_time_s = 2 (baseline) or
3 (Langevin).
"""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
from analysis_store import row, sqlite_store

from harness.analysis import plots
from harness.analysis.curves import trials_to_target
from harness.analysis.load import load_study
from harness.analysis.report import analyze
from harness.analysis.tables import paper_table
from harness.cli import main
from harness.study.run_schema import (
    RUN_KIND_ANALYSIS,
    RUN_KIND_TRIAL,
    STATUS_DIVERGED,
    STATUS_FAILED,
    STATUS_FINISHED,
    TAG_PAIR,
    TAG_RUN_KIND,
    TAG_STATUS,
    TAG_STUDY,
    TAG_TRIAL_KEY,
    TAG_VARIANT,
    display_name,
    variant_of,
)

STUDY = "growth"
DEPTHS = (3, 20, 30, 40)
SEEDS = range(6)
GAIN = {3: 0.0, 20: 0.02, 30: 0.03, 40: 0.04}
JITTER = (-0.003, 0.003, -0.001, 0.001, -0.002, 0.002)  # per seed; mean 0
EPOCHS = 5
SIGMA = 1e-3


def _base_accuracy(depth: int, seed: int) -> float:
    return 0.9 - 0.001 * depth + 0.004 * seed


def _curve_metrics(final: float, time_s: float, diverged: bool) -> dict[str, list[float]]:
    val = [final * (1 - 0.5**e) for e in range(1, EPOCHS + 1)]
    loss = [math.nan if diverged else 1 - v for v in val]
    return {
        "train_accuracy": val,
        "val_accuracy": val,
        "train_loss": loss,
        "val_loss": loss,
        "epoch_time_s": [time_s] * EPOCHS,
        "images_per_s": [1000.0] * EPOCHS,
    }


def _log_trial(client, experiment_id, base, depth, seed, sigma, accuracy, status, epochs):
    from mlflow.entities import Metric, Param

    variant = variant_of(sigma, 1.0)
    params = {
        "dataset": "mnist",
        "model": "dense",
        "depth": depth,
        "optimizer": display_name(base, sigma, 1.0),
        "base_optimizer": base,
        "sigma": sigma,
        "layer_fraction": 1.0,
        "learning_rate": 5e-3,
        "seed": seed,
        "epochs": EPOCHS,
        "batch_size": 512,
    }
    tags = {
        TAG_RUN_KIND: RUN_KIND_TRIAL,
        TAG_STUDY: STUDY,
        TAG_TRIAL_KEY: f"{base}-{variant}-{depth}-{seed}",
        TAG_STATUS: status,
        TAG_PAIR: base,
        TAG_VARIANT: variant,
    }
    run_id = client.create_run(experiment_id, tags=tags).info.run_id
    now = int(time.time() * 1000)
    metrics = []
    if status != STATUS_FAILED:
        curves = _curve_metrics(accuracy, 2.0 if sigma == 0 else 3.0, status == STATUS_DIVERGED)
        metrics = [
            Metric(key, value, now + step, step)
            for key, values in curves.items()
            for step, value in enumerate(values[:epochs], start=1)
        ]
        metrics += [
            Metric("test_accuracy", accuracy, now, epochs),
            Metric(
                "test_loss", math.nan if status == STATUS_DIVERGED else 1 - accuracy, now, epochs
            ),
        ]
    client.log_batch(run_id, metrics=metrics, params=[Param(k, str(v)) for k, v in params.items()])
    client.set_terminated(run_id, "FAILED" if status == STATUS_FAILED else "FINISHED")


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """The tracking URI of a sqlite store with the study described in the module docstring."""
    root = tmp_path_factory.mktemp("mlflow")
    uri, client, ids = sqlite_store(root, STUDY, "empty", "sigmas")
    experiment_id = ids[STUDY]
    # (base optimizer, depth, seed, sigma, test accuracy, status, epochs logged)
    planted = [
        (pair, depth, seed, sigma, _base_accuracy(depth, seed) + effect, STATUS_FINISHED, EPOCHS)
        for depth in DEPTHS
        for seed in SEEDS
        for pair, gain in (("adam", GAIN[depth]), ("rmsprop", 0.0))
        for sigma, effect in ((0.0, 0.0), (SIGMA, gain + JITTER[seed] * (1 + depth / 40)))
    ]
    planted += [
        ("adadelta", depth, seed, sigma, 0.8, STATUS_FINISHED, EPOCHS)
        for seed in (0, 1)
        for depth in (3, 20)
        for sigma in (0.0, SIGMA)
    ]
    planted += [
        ("adadelta", 20, 2, 0.0, 0.0, STATUS_FAILED, 0),
        ("adadelta", 20, 2, SIGMA, 0.8, STATUS_FINISHED, EPOCHS),
        ("adadelta", 20, 3, 0.0, 0.8, STATUS_FINISHED, EPOCHS),
        ("adadelta", 20, 3, SIGMA, 0.05, STATUS_DIVERGED, 3),
        ("adam", 30, 8, 0.0, _base_accuracy(30, 8), STATUS_FINISHED, EPOCHS),
    ]
    for trial in planted:
        _log_trial(client, experiment_id, *trial)
    for sigma in (0.0, SIGMA, 5 * SIGMA):
        _log_trial(client, ids["sigmas"], "adam", 3, 0, sigma, 0.9, STATUS_FINISHED, EPOCHS)
    return uri


@pytest.fixture(scope="module")
def analysis(store):
    return analyze(load_study(STUDY, store), "test_accuracy", target=0.8)


def test_load_gives_one_row_per_trial_and_per_epoch(analysis):
    trials, epochs = analysis.study.trials, analysis.study.epochs
    assert len(trials) == 2 * 2 * len(DEPTHS) * len(SEEDS) + 8 + 5
    assert set(trials["arm"]) == {
        "Adam",
        "L-Adam",
        "RMSprop",
        "L-RMSprop",
        "Adadelta",
        "L-Adadelta",
    }
    assert trials["depth"].dtype == "Int64" and trials["sigma"].dtype == float
    assert epochs.groupby("run_id").size().max() == EPOCHS
    failed = row(trials, arm="Adadelta", depth=20, seed=2)
    assert failed["status"] == STATUS_FAILED and math.isnan(failed["best_val_accuracy"])
    finished = row(trials, arm="Adam", depth=3, seed=0)
    assert finished["best_val_accuracy"] == pytest.approx(_base_accuracy(3, 0) * (1 - 0.5**EPOCHS))
    assert finished["epochs_done"] == EPOCHS


def test_load_by_id_names_each_noise_setting_of_one_optimizer(store):
    from mlflow import MlflowClient

    experiment_id = MlflowClient(store).get_experiment_by_name("sigmas").experiment_id
    study = load_study(experiment_id, store)
    assert study.name == "sigmas"
    assert set(study.trials["arm"]) == {"Adam", "L-Adam (σ=0.001)", "L-Adam (σ=0.005)"}


def test_failed_and_diverged_count_at_chance_and_are_counted(analysis):
    summary = analysis.summary
    adadelta = row(summary, arm="Adadelta", depth=20)
    assert (
        adadelta["n_trials"],
        adadelta["n_finished"],
        adadelta["n_failed"],
        adadelta["n_diverged"],
    ) == (4, 3, 1, 0)
    assert adadelta["test_accuracy_n"] == 4
    assert adadelta["test_accuracy_mean"] == pytest.approx((3 * 0.8 + 0.1) / 4)
    langevin = row(summary, arm="L-Adadelta", depth=20)
    assert (langevin["n_trials"], langevin["n_diverged"], langevin["test_accuracy_n"]) == (4, 1, 4)
    # the diverged run logged 0.05; it counts at the stated score, chance = 0.1
    assert langevin["test_accuracy_mean"] == pytest.approx((3 * 0.8 + 0.1) / 4)
    assert 0 <= langevin["test_accuracy_ci_low"] < langevin["test_accuracy_mean"]
    assert langevin["test_accuracy_mean"] < langevin["test_accuracy_ci_high"] <= 1
    cell = paper_table(summary, "test_accuracy").set_index("depth").loc[20, "L-Adadelta"]
    assert cell.startswith("62.50 [") and cell.endswith("(n=4, 1 diverged)")


def test_gain_growing_with_depth_gives_positive_slope_and_onset(analysis):
    for depth in DEPTHS:
        gain = row(analysis.gains, arm="L-Adam", depth=depth)
        assert gain["mean_gain"] == pytest.approx(GAIN[depth], abs=1e-9)
        assert (gain["ci_low"] > 0) == (depth >= 20)
        assert gain["ci_low"] <= gain["mean_gain"] <= gain["ci_high"]
    trend = row(analysis.trend, arm="L-Adam")
    assert trend["slope"] > 0 and trend["slope_ci_low"] > 0 and trend["slope_p"] < 0.01
    assert trend["onset_depth"] == 20


def test_no_effect_gives_intervals_covering_zero(analysis):
    for depth in DEPTHS:
        gain = row(analysis.gains, arm="L-RMSprop", depth=depth)
        assert gain["ci_low"] < 0 < gain["ci_high"] and gain["p_wilcoxon"] > 0.05
        assert gain["p_ttest"] > 0.05 and gain["p_wilcoxon_holm"] >= gain["p_wilcoxon"]
        assert (gain["n_wins"], gain["n_ties"], gain["n_losses"]) == (3, 0, 3)
        assert math.isnan(gain["boot_low"])  # 6 seeds < MIN_N_BOOTSTRAP
        assert gain["note"] == "too few seeds for a bootstrap CI (n=6 < 8)"
    trend = row(analysis.trend, arm="L-RMSprop")
    assert trend["slope_ci_low"] < 0 < trend["slope_ci_high"] and math.isnan(trend["onset_depth"])


def test_pairing_uses_seeds_on_both_sides_and_says_which_are_not(analysis):
    gain40 = row(analysis.gains, arm="L-Adam", depth=40)
    assert (gain40["n_pairs"], gain40["unpaired"]) == (len(SEEDS), "")
    gain30 = row(analysis.gains, arm="L-Adam", depth=30)
    assert (gain30["n_pairs"], gain30["unpaired"]) == (len(SEEDS), "Adam only: seeds 8")
    few = row(analysis.gains, arm="L-Adadelta", depth=3)
    assert few["n_pairs"] == 2 and math.isnan(few["ci_low"]) and math.isnan(few["p_wilcoxon"])
    assert few["note"].startswith("too few seeds (n=2")
    failures = row(analysis.gains, arm="L-Adadelta", depth=20)  # gains 0, 0, +0.7, −0.7
    assert (failures["n_pairs"], failures["n_failed_baseline"], failures["n_failed_langevin"]) == (
        4,
        1,
        1,
    )
    assert (failures["n_wins"], failures["n_ties"], failures["n_losses"]) == (1, 2, 1)
    assert failures["mean_gain"] == pytest.approx(0.0, abs=1e-12)


def test_time_to_target(analysis):
    per_trial = trials_to_target(analysis.study.epochs, 0.8)
    adam = row(
        per_trial, arm="Adam", depth=3, seed=0
    )  # final 0.897: 0.785 at e = 3, 0.841 at e = 4
    assert (adam["epochs_to_target"], adam["seconds_to_target"]) == (4, 8.0)
    langevin = row(per_trial, arm="L-Adam", depth=40, seed=0)  # final 0.897, 3 s per epoch
    assert (langevin["epochs_to_target"], langevin["seconds_to_target"]) == (4, 12.0)
    adadelta = row(analysis.to_target, arm="Adadelta", depth=3)  # final 0.8 never reached
    assert (adadelta["n"], adadelta["n_reached"]) == (2, 0)


def test_plots_hold_the_expected_series(analysis):
    figure = plots.metric_vs_depth(analysis.summary, "test_accuracy")[
        "test_accuracy-vs_depth-mnist-dense"
    ]
    panels = {ax.get_title(): ax for ax in figure.axes}
    assert set(panels) == {"adam", "rmsprop", "adadelta"}
    lines = {line.get_label(): line for line in panels["adam"].get_lines()}
    assert list(lines) == ["Adam", "L-Adam"]
    adam = analysis.summary[analysis.summary["arm"] == "Adam"].sort_values("depth")
    np.testing.assert_allclose(lines["Adam"].get_xdata(), DEPTHS)
    np.testing.assert_allclose(lines["Adam"].get_ydata(), adam["test_accuracy_mean"])
    assert len(panels["adam"].collections) == 2  # one CI band per arm

    (ax,) = plots.gain_vs_depth(analysis.gains, analysis.trend, "test_accuracy")[
        "gain_vs_depth-mnist-dense"
    ].axes
    gains = {line.get_label(): line for line in ax.get_lines()}
    np.testing.assert_allclose(
        gains["L-Adam − Adam"].get_ydata(), [GAIN[d] for d in DEPTHS], atol=1e-9
    )
    assert {
        "fit L-Adam − Adam",
        "L-RMSprop − RMSprop",
        "fit L-RMSprop − RMSprop",
        "L-Adadelta − Adadelta",
    } <= set(gains)

    curves = plots.curves_by_depth(analysis.curves, "val_accuracy")[
        "curves-val_accuracy-mnist-dense"
    ]
    assert [ax.get_title() for ax in curves.axes] == [f"depth {d}" for d in DEPTHS]
    first = {line.get_label(): line for line in curves.axes[0].get_lines()}
    np.testing.assert_allclose(
        first["Adadelta"].get_ydata(), [0.8 * (1 - 0.5**e) for e in range(1, EPOCHS + 1)]
    )


def test_cli_writes_report_logs_analysis_run_and_prints_table(store, tmp_path, capsys):
    out = tmp_path / "report"
    assert (
        main(["analyze", STUDY, "--tracking-uri", store, "--out", str(out), "--target", "0.8"]) == 0
    )
    printed = capsys.readouterr().out
    lines = printed.splitlines()
    assert lines[0].startswith("In short: each Langevin arm against its baseline at the deepest")
    report = (out / "report.md").read_text().splitlines()
    assert report[0] == f"# Analysis of study `{STUDY}`"
    assert report[2].startswith("## In short: each Langevin arm against its baseline")  # the answer
    assert report[4].startswith("- mnist/dense depth ")  # first, then what the tables count
    header = lines[lines.index(next(x for x in lines if x.startswith("test_accuracy per"))) + 2]
    assert header.split()[:3] == ["dataset", "model", "depth"] and "L-Adam" in header
    assert "CI is above 0 from depth 20 on" in printed
    for name in [
        "summary.csv",
        "gains.csv",
        "depth_trend.csv",
        "time_to_target.csv",
        "report.md",
        "test_accuracy-vs_depth-mnist-dense.png",
        "gain_vs_depth-mnist-dense.svg",
        "curves-val_accuracy-mnist-dense.png",
    ]:
        assert (out / name).stat().st_size > 0, name
    report = (out / "report.md").read_text()
    assert "| dataset | model | depth | Adadelta |" in report and "Adam only: seeds 8" in report

    from mlflow import MlflowClient

    client = MlflowClient(store)
    experiment = client.get_experiment_by_name(STUDY)
    (run,) = client.search_runs(
        [experiment.experiment_id], f"tags.{TAG_RUN_KIND} = '{RUN_KIND_ANALYSIS}'"
    )
    assert "report.md" in {a.path for a in client.list_artifacts(run.info.run_id)}
    reloaded = load_study(STUDY, store)
    assert len(reloaded.trials) == 2 * 2 * len(DEPTHS) * len(SEEDS) + 13  # analysis run ignored


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["nope"], "unknown study 'nope' in sqlite:"),
        (["empty"], "study 'empty' (experiment"),
        (
            ["growth", "--metric", "accuracy"],
            "metric 'accuracy' is not logged in study 'growth'; logged: epoch_time_s",
        ),
    ],
)
def test_cli_bad_input_is_one_line(store, tmp_path, capsys, argv, message):
    assert main(["analyze", *argv, "--tracking-uri", store, "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err
    if argv == ["nope"]:
        assert "studies: empty, growth, sigmas" in err  # not MLflow's empty Default


def test_cli_missing_store_is_not_created(tmp_path, capsys):
    uri = f"sqlite:///{tmp_path / 'missing.db'}"
    assert main(["analyze", STUDY, "--tracking-uri", uri]) == 2
    assert (
        "no MLflow store at" in capsys.readouterr().err and not (tmp_path / "missing.db").exists()
    )


def test_the_report_leads_with_each_comparisons_deepest_gain_in_words(analysis):
    """Without a declared test, the first section says, per Langevin arm, its deepest depth's
    gain with the t interval and what it shows (planted: L-Adam higher, L-RMSprop no effect)."""
    from harness.analysis.report import LEAD_TITLE

    title, sentences = analysis.sections()[0]
    assert title == LEAD_TITLE
    deepest = max(DEPTHS)
    adam = next(s for s in sentences if "L-Adam − Adam" in s)
    gain = row(analysis.gains, arm="L-Adam", depth=deepest)
    assert adam.startswith(f"mnist/dense depth {deepest}: L-Adam − Adam in test_accuracy: "
                           f"{100 * GAIN[deepest]:+.2f} pp (95% t interval "
                           f"[{100 * gain['ci_low']:+.2f}, {100 * gain['ci_high']:+.2f}]")
    assert adam.endswith("L-Adam is higher at this depth.")
    rmsprop = next(s for s in sentences if "L-RMSprop − RMSprop" in s)
    assert "3 wins / 0 ties / 3 losses over 6 seeds" in rmsprop
    assert rmsprop.endswith("the interval holds 0: no difference shown at these seeds.")
    assert len(sentences) == len(analysis.gains.groupby(["dataset", "model", "pair", "arm"]))


def test_the_lead_sentence_counts_in_words():
    import pandas as pd

    from harness.analysis.tables import lead_sentences

    one = pd.DataFrame([{"dataset": "mnist", "model": "dense", "pair": "adam", "arm": "L-Adam",
                         "baseline_arm": "Adam", "depth": 40, "mean_gain": 0.01, "n_wins": 1,
                         "n_ties": 1, "n_losses": 1, "n_pairs": 3, "ci_low": float("nan"),
                         "ci_high": float("nan"), "boot_low": float("nan"),
                         "boot_high": float("nan")}])
    assert "1 win / 1 tie / 1 loss over 3 seeds" in lead_sentences(one, "test_accuracy")[0]
    none = one.assign(n_wins=0, n_ties=2, n_losses=0, n_pairs=1)
    assert "0 wins / 2 ties / 0 losses over 1 seed" in lead_sentences(none, "test_accuracy")[0]


def test_another_metric_writes_its_own_files_and_overwrites_none(store, tmp_path, capsys):
    out = tmp_path / "both"
    assert main(["analyze", STUDY, "--tracking-uri", store, "--out", str(out)]) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.suffix in (".md", ".csv")}
    assert main(["analyze", STUDY, "--tracking-uri", store, "--out", str(out), "--metric",
                 "val_accuracy"]) == 0
    assert f"report: {out / 'report-val_accuracy.md'}" in capsys.readouterr().out
    after = {p.name: p.read_bytes() for p in out.iterdir() if p.suffix in (".md", ".csv")}
    assert {name: after[name] for name in before} == before  # the default metric's, untouched
    assert {"report-val_accuracy.md", "gains-val_accuracy.csv", "summary-val_accuracy.csv"} <= \
        set(after) - set(before)
    assert "metric `val_accuracy`" in after["report-val_accuracy.md"].decode()
    assert (out / "val_accuracy-vs_depth-mnist-dense.png").exists()
    assert (out / "gain_vs_depth-mnist-dense-val_accuracy.png").exists()


def test_accuracy_axes_read_in_percent_and_gains_in_points_as_the_tables_do(analysis):
    """The plotted values stay fractions; the axes say % (or pp for a gain) and tick in them;
    a loss keeps its own scale."""
    from harness.analysis import plots

    def axis(figure):
        ax = figure.axes[0]
        return ax.get_ylabel(), ax.yaxis.get_major_formatter()(0.25, 0)

    (figure,) = plots.metric_vs_depth(analysis.summary, "test_accuracy").values()
    assert axis(figure) == ("test_accuracy (%)", "25%")
    (figure,) = plots.gain_vs_depth(analysis.gains, analysis.trend, "test_accuracy").values()
    assert axis(figure) == ("gain in test_accuracy (pp)", "+25")
    (figure,) = plots.curves_by_depth(analysis.curves, "val_accuracy").values()
    assert axis(figure) == ("val_accuracy (%)", "25%")
    (figure,) = plots.curves_by_depth(analysis.curves, "val_loss").values()
    assert figure.axes[0].get_ylabel() == "val_loss"
    assert figure.axes[0].yaxis.get_major_formatter()(0.25, 0) != "25%"


def test_figures_tick_the_depths_run_and_the_report_captions_them(analysis, tmp_path):
    from harness.analysis import plots
    from harness.analysis.report import write_report

    (figure,) = plots.gain_vs_depth(analysis.gains, analysis.trend, "test_accuracy").values()
    assert [t.get_text() for t in figure.axes[0].get_xticklabels()] == [str(d) for d in DEPTHS]
    one_depth = analysis.gains[analysis.gains["depth"] == 20]
    (figure,) = plots.gain_vs_depth(one_depth, analysis.trend.iloc[:0], "test_accuracy").values()
    assert list(figure.axes[0].get_xticks()) == [20.0]
    report = write_report(analysis, tmp_path)[-1].read_text()
    assert ("![gain_vs_depth-mnist-dense](gain_vs_depth-mnist-dense.png)\n\n*Lines: the mean "
            "paired gain") in report
    assert report.count("*Lines: the mean per epoch over seeds per arm") == 1
