"""`harness analyze` on a tuned study: a real sqlite MLflow store written by the test in the shape
`harness.study.run_schema` documents (arm parent runs, tune and final trials as their children).

Study "bimodal": mnist, dense, depths 3 and 30, Adam and its twin L-Adam (pair adam), K = 6 tuning
points per arm (twins share the points' learning rates and tuning seed 0; L-Adam also draws σ),
10 final seeds (100..109) per arm:
- depth 3: every final run trains (0.97 + 0.001 · i for seed 100 + i, L-Adam 0.002 higher);
- depth 30 (the planted bimodal effect): L-Adam trains on 8 of 10 seeds (0.95 + 0.002 · i), the
  other two sit at 0.1 (seed 108) or diverged (seed 109); Adam trains on 2 of 10 (seeds 100, 101 at
  0.93 and 0.94) and sits at 0.1 on the rest.
Tuning scores: Adam = TUNE_SCORES, L-Adam = TUNE_SCORES + 0.01, except its point 5 diverged.
Chosen: Adam lr 0.098 in [1e-4, 0.1] log (at the high edge), L-Adam lr 3e-3 and σ 1.05e-5 in
[1e-5, 1e-2] log (σ at the low edge).
"""

from __future__ import annotations

import json
import math
import time

import numpy as np
import pandas as pd
import pytest
import scipy.stats
from analysis_store import row, sqlite_store

from harness.analysis import plots
from harness.analysis.load import load_study
from harness.analysis.report import analyze, markdown
from harness.analysis.success import thresholds
from harness.cli import main
from harness.study.run_schema import (
    CHOSEN_PREFIX,
    PHASE_FINAL,
    PHASE_TUNE,
    RANGE_PREFIX,
    RUN_KIND_ARM,
    RUN_KIND_TRIAL,
    STATUS_DIVERGED,
    STATUS_FINISHED,
    STATUS_INTERRUPTED,
    STATUS_RUNNING,
    TAG_ARM,
    TAG_BUDGET,
    TAG_PAIR,
    TAG_PARENT_RUN,
    TAG_PHASE,
    TAG_RUN_KIND,
    TAG_STATUS,
    TAG_STUDY,
    TAG_VARIANT,
)

STUDY = "bimodal"
DEPTHS = (3, 30)
FINAL_SEEDS = tuple(range(100, 110))
TUNE_LR = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2)
TUNE_SIGMA = (1e-5, 3e-5, 1e-4, 3e-4, 1e-3, 3e-3)
TUNE_SCORES = (0.30, 0.55, 0.80, 0.85, 0.60, 0.20)
EPOCHS = 3
CHOSEN = {"Adam": {"learning_rate": 0.098}, "L-Adam": {"learning_rate": 3e-3, "sigma": 1.05e-5}}
RANGES = {"learning_rate": (1e-4, 0.1), "sigma": (1e-5, 1e-2)}


def _final_accuracy(optimizer: str, depth: int, i: int) -> tuple[float, str]:
    if depth == 3:
        return 0.97 + 0.001 * i + (0.002 if optimizer == "L-Adam" else 0.0), STATUS_FINISHED
    if optimizer == "L-Adam":
        if i == 9:
            return 0.05, STATUS_DIVERGED
        return (0.1, STATUS_FINISHED) if i == 8 else (0.95 + 0.002 * i, STATUS_FINISHED)
    return ({0: 0.93, 1: 0.94}.get(i, 0.1), STATUS_FINISHED)


def _arm_id(depth: int, optimizer: str) -> str:
    return f"mnist-dense{depth}-{optimizer}"


def _log(client, experiment_id, tags, params, val_accuracy, test_accuracy=None):
    from mlflow.entities import Metric, Param

    run_id = client.create_run(experiment_id, tags=tags).info.run_id
    now = int(time.time() * 1000)
    curve = [val_accuracy * (1 - 0.3**e) for e in range(1, EPOCHS)] + [val_accuracy]
    metrics = [
        Metric(key, value, now + e, e)
        for e, value in enumerate(curve, start=1)
        for key, value in (("val_accuracy", value), ("epoch_time_s", 1.0))
    ]
    if test_accuracy is not None:
        metrics.append(Metric("test_accuracy", test_accuracy, now, EPOCHS))
    params = [Param(k, str(v)) for k, v in params.items()]
    client.log_batch(run_id, metrics=metrics, params=params)
    client.set_terminated(run_id)
    return run_id


def _arm_run(client, experiment_id, depth, optimizer) -> str:
    variant = "baseline" if optimizer == "Adam" else "langevin"
    searched = ["learning_rate"] + (["sigma"] if variant == "langevin" else [])
    tags = {
        TAG_RUN_KIND: RUN_KIND_ARM,
        TAG_ARM: _arm_id(depth, optimizer),
        TAG_STUDY: STUDY,
        TAG_PAIR: "adam",
        TAG_VARIANT: variant,
        TAG_BUDGET: str(len(TUNE_LR)),
        f"{CHOSEN_PREFIX}point": "3",
        f"{CHOSEN_PREFIX}score": "0.86",
        **{f"{CHOSEN_PREFIX}{h}": str(v) for h, v in CHOSEN[optimizer].items()},
    }
    params = {
        "budget": len(TUNE_LR),
        "sampler": "sobol",
        "sampler_seed": 7,
        "metric": "val_accuracy",
        "mode": "max",
        "score_epoch": "last",
        "tuning_seeds": json.dumps([0]),
        "final_seeds": json.dumps(list(FINAL_SEEDS)),
        **{
            f"{RANGE_PREFIX}{h}.{bound}": value
            for h in searched
            for bound, value in zip(("low", "high", "log"), (*RANGES[h], True), strict=True)
        },
    }
    from mlflow.entities import Param

    run_id = client.create_run(experiment_id, tags=tags).info.run_id
    client.log_batch(run_id, params=[Param(k, str(v)) for k, v in params.items()])
    client.set_terminated(run_id)
    return run_id


def _trial(
    client,
    experiment_id,
    parent,
    depth,
    optimizer,
    phase,
    point,
    seed,
    lr,
    sigma,
    acc,
    status,
    test=None,
    extra=None,
    arm=None,
):
    variant = "baseline" if sigma == 0 else "langevin"
    tags = {
        TAG_RUN_KIND: RUN_KIND_TRIAL,
        TAG_STUDY: STUDY,
        TAG_PHASE: phase,
        TAG_ARM: arm or _arm_id(depth, optimizer),
        TAG_PARENT_RUN: parent,
        **(extra or {}),
        TAG_STATUS: status,
        TAG_PAIR: "adam",
        TAG_VARIANT: variant,
    }
    params = {
        "phase": phase,
        "arm": arm or _arm_id(depth, optimizer),
        "point": point,
        **(extra or {}),
        "learning_rate": lr,
        "sigma": sigma,
        "seed": seed,
        "depth": depth,
        "base_optimizer": "adam",
        "dataset": "mnist",
        "model": "dense",
        "optimizer": optimizer,
        "layer_fraction": 1.0,
        "epochs": EPOCHS,
        "batch_size": 128,
    }
    _log(client, experiment_id, tags, params, acc, test)


def _fill(client, experiment_id) -> dict[tuple[int, str], str]:
    """The study's arm runs and trials; returns the arm runs' ids."""
    parents = {}
    for depth in DEPTHS:
        for optimizer in ("Adam", "L-Adam"):
            parent = parents[depth, optimizer] = _arm_run(client, experiment_id, depth, optimizer)
            noisy = optimizer == "L-Adam"
            for point, (lr, sigma, score) in enumerate(
                zip(TUNE_LR, TUNE_SIGMA, TUNE_SCORES, strict=True)
            ):
                status = STATUS_DIVERGED if noisy and point == 5 else STATUS_FINISHED
                _trial(
                    client, experiment_id, parent, depth, optimizer, PHASE_TUNE, point, 0, lr,
                    sigma if noisy else 0.0, score + (0.01 if noisy else 0.0), status, test=0.5,
                )  # fmt: skip
            chosen = CHOSEN[optimizer]
            for i, seed in enumerate(FINAL_SEEDS):
                accuracy, status = _final_accuracy(optimizer, depth, i)
                _trial(
                    client, experiment_id, parent, depth, optimizer, PHASE_FINAL, 3, seed,
                    chosen["learning_rate"], chosen.get("sigma", 0.0), accuracy, status, accuracy,
                )  # fmt: skip
    return parents


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    uri, client, ids = sqlite_store(tmp_path_factory.mktemp("tuned"), STUDY)
    _fill(client, ids[STUDY])
    return uri


@pytest.fixture(scope="module")
def controlled(tmp_path_factory):
    """The same study plus what the decision-grade protocol adds at depth 30: two screening
    trials of L-Adam's point 3 (stage = screen, val 0.99: the budget curve must not count them)
    and the matched-learning-rate controls of L-Adam on every final seed — Adam's optimizer at
    L-Adam's lr (σ = 0, trains like L-Adam) and L-Adam at Adam's lr (fails like Adam)."""
    uri, client, ids = sqlite_store(tmp_path_factory.mktemp("controlled"), STUDY)
    experiment_id = ids[STUDY]
    parents = _fill(client, experiment_id)
    noisy = _arm_id(30, "L-Adam")
    parent = parents[30, "L-Adam"]
    for seed in (1, 2):
        _trial(client, experiment_id, parent, 30, "L-Adam", PHASE_TUNE, 3, seed, 3e-3, 1.05e-5,
               0.99, STATUS_FINISHED, extra={"stage": "screen"})
    for i, seed in enumerate(FINAL_SEEDS):
        lr_langevin, status = _final_accuracy("L-Adam", 30, i)
        lr_plain, _ = _final_accuracy("Adam", 30, i)
        _trial(client, experiment_id, parent, 30, "Adam", PHASE_FINAL, 3, seed, 3e-3, 0.0,
               lr_langevin, status, lr_langevin, arm=f"{noisy}[sigma=0]",
               extra={"control": "sigma0", "control_of": noisy})
        _trial(client, experiment_id, parent, 30, "L-Adam", PHASE_FINAL, 3, seed, 0.098, 1.05e-5,
               lr_plain, STATUS_FINISHED, lr_plain, arm=f"{noisy}[lr=Adam]",
               extra={"control": "plain_lr", "control_of": noisy})
    return uri


def test_controls_and_screening_trials_change_no_table_of_the_arms(store, controlled, analysis):
    """The controls get their 2 × 2 and nothing else; the screening trials are no budget draws."""
    with_controls = analyze(load_study(STUDY, controlled))
    for field in ("summary", "gains", "per_seed"):
        pd.testing.assert_frame_equal(getattr(with_controls, field), getattr(analysis, field))
    for field in ("success", "twins", "curves"):
        pd.testing.assert_frame_equal(getattr(with_controls.tuning, field),
                                      getattr(analysis.tuning, field))
    assert analysis.tuning.matched_lr.empty
    effects = with_controls.tuning.matched_lr.set_index("effect")
    assert set(effects["depth"]) == {30} and len(effects) == 5
    # the bimodal difference is all learning rate: no noise effect at either learning rate
    assert effects.loc["noise at the plain lr", "n_ties"] == 10
    assert effects.loc["lr effect at sigma = 0", "mean_gain"] == pytest.approx(
        effects.loc["tuned vs tuned", "mean_gain"])
    assert "Matched learning rates (2 × 2" in with_controls.text()


def test_final_runs_not_ended_change_no_table_and_are_counted(tmp_path, analysis):
    """A final run still going, or interrupted and waiting for a resume, has no outcome yet: it
    is no failure at chance and no seed of a look; the report counts it apart."""
    uri, client, ids = sqlite_store(tmp_path, STUDY)
    parents = _fill(client, ids[STUDY])
    for optimizer, status in (("Adam", STATUS_INTERRUPTED), ("L-Adam", STATUS_RUNNING)):
        chosen = CHOSEN[optimizer]
        _trial(client, ids[STUDY], parents[30, optimizer], 30, optimizer, PHASE_FINAL, 3, 110,
               chosen["learning_rate"], chosen.get("sigma", 0.0), 0.5, status)  # no test yet
    with_open = analyze(load_study(STUDY, uri))
    for field in ("summary", "gains", "per_seed"):
        pd.testing.assert_frame_equal(getattr(with_open, field), getattr(analysis, field))
    for field in ("success", "twins"):
        pd.testing.assert_frame_equal(getattr(with_open.tuning, field),
                                      getattr(analysis.tuning, field))
    assert "; 2 more not ended yet (running or interrupted), left out until they end)" in \
        markdown(with_open, [])
    assert "not ended" not in markdown(analysis, [])


@pytest.fixture(scope="module")
def analysis(store):
    return analyze(load_study(STUDY, store))


def test_bimodal_effect_is_a_success_rate_difference_through_the_cli(store, tmp_path, capsys):
    out = tmp_path / "report"
    assert main(["analyze", STUDY, "--tracking-uri", store, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    twins = pd.read_csv(out / "success_twins.csv")
    deep = row(twins, depth=30)
    assert (deep["n_success"], deep["n"], deep["baseline_n_success"], deep["baseline_n"]) == (
        8,
        10,
        2,
        10,
    )
    expected = scipy.stats.fisher_exact([[8, 2], [2, 8]]).pvalue
    assert deep["p_fisher"] == pytest.approx(expected) and deep["p_fisher"] < 0.05
    shallow = row(twins, depth=3)
    assert (shallow["n_success"], shallow["baseline_n_success"], shallow["p_fisher"]) == (
        10,
        10,
        1.0,
    )
    for name in [
        "protocol.csv", "chosen.csv", "budget_curves.csv", "success.csv", "success_twins.csv",
        "summary.csv", "gains.csv", "report.md", "budget-mnist-dense.png",
        "finals-test_accuracy-mnist-dense.png", "finals-test_accuracy-mnist-dense.svg",
    ]:  # fmt: skip
        assert (out / name).stat().st_size > 0, name
    assert "mnist-dense30-Adam: chosen learning_rate = 0.098 is at the high edge" in printed
    assert "mnist-dense30-L-Adam: chosen sigma = 1.05e-05 is at the low edge" in printed
    assert "mnist-dense30-L-Adam: chosen learning_rate" not in printed
    report = (out / "report.md").read_text()
    assert "learning_rate [0.0001, 0.1] log; sigma [1e-05, 0.01] log" in report  # the ranges
    assert "100, 101, 102, 103, 104, 105, 106, 107, 108, 109" in report  # the final seeds
    assert "| mnist-dense3-L-Adam | 6 | sobol | 7 |" in report  # budget, sampler, sampler seed


def test_success_rates_have_wilson_intervals_and_failures_count(analysis):
    from statsmodels.stats.proportion import proportion_confint

    rates = analysis.tuning.success
    langevin = row(rates, arm="L-Adam", depth=30)
    assert (langevin["n"], langevin["n_success"]) == (10, 8)  # the diverged seed is a failure
    low, high = proportion_confint(8, 10, alpha=0.05, method="wilson")
    assert (langevin["success_low"], langevin["success_high"]) == pytest.approx((low, high))
    assert langevin["threshold"] == pytest.approx(0.1 + 0.1)  # mnist: chance 0.1, + 10 points
    good = np.array([0.95 + 0.002 * i for i in range(8)])
    assert langevin["acc_given_success"] == pytest.approx(good.mean())
    boot = scipy.stats.bootstrap(
        (good,), np.mean, method="BCa", n_resamples=9999, rng=np.random.default_rng(0)
    ).confidence_interval
    assert (langevin["acc_low"], langevin["acc_high"]) == pytest.approx((boot.low, boot.high))
    adam = row(rates, arm="Adam", depth=30)  # 2 successes: too few for a bootstrap interval
    assert adam["n_success"] == 2 and math.isnan(adam["acc_low"])


def test_tuning_trials_never_pool_with_finals(analysis):
    assert set(analysis.study.trials["phase"]) == {PHASE_FINAL}
    summary = row(analysis.summary, arm="L-Adam", depth=30)
    assert (summary["n_trials"], summary["n_diverged"]) == (10, 1)
    # chosen learning rates differ between twins (tuned): the finals still pair by seed
    gain = row(analysis.gains, arm="L-Adam", depth=30)
    assert gain["n_pairs"] == len(FINAL_SEEDS) and gain["baseline_arm"] == "Adam"
    assert (gain["n_wins"], gain["n_ties"], gain["n_losses"]) == (8, 2, 0)  # 108, 109: 0.1 both
    curves = analysis.tuning.curves
    assert set(curves["n_points"]) == {len(TUNE_LR)} and curves["budget"].max() == len(TUNE_LR)


def test_budget_curve_is_opdas_with_a_band_in_the_unit_interval(analysis):
    from opda.nonparametric import EmpiricalDistribution

    curve = analysis.tuning.curves
    curve = curve[curve["arm_id"] == "mnist-dense30-L-Adam"].sort_values("budget")
    scores = np.array([s + 0.01 for s in TUNE_SCORES[:5]] + [0.1])  # point 5 diverged: chance
    ns = np.arange(1, len(scores) + 1)
    expected = EmpiricalDistribution(scores, a=0.0, b=1.0).average_tuning_curve(ns)
    np.testing.assert_allclose(curve["expected_best"], expected)
    assert curve["expected_best"].iloc[0] == pytest.approx(scores.mean())  # best of 1 = the mean
    assert (curve["band_low"] <= curve["expected_best"]).all()
    assert (curve["expected_best"] <= curve["band_high"]).all()
    assert curve["band_low"].min() >= 0 and curve["band_high"].max() <= 1
    assert curve["expected_best"].is_monotonic_increasing


def test_figures_show_every_final_seed_and_both_twins(analysis):
    finals = analysis.study.trials
    figure = plots.finals_points(finals, thresholds(finals), "test_accuracy")[
        "finals-test_accuracy-mnist-dense"
    ]
    (ax,) = figure.axes
    points = {c.get_label(): c.get_offsets() for c in ax.collections if c.get_label()}
    assert len(points["Adam"]) == 2 * len(FINAL_SEEDS)
    assert len(points["L-Adam"]) == 2 * len(FINAL_SEEDS) - 1
    assert points["L-Adam diverged/failed"].tolist() == [[pytest.approx(30.4), 0.1]]
    budget = plots.budget_curves(analysis.tuning.curves)["budget-mnist-dense"]
    panels = {ax.get_title(): ax for ax in budget.axes}
    assert set(panels) == {"adam, depth 3", "adam, depth 30"}
    assert [line.get_label() for line in panels["adam, depth 30"].get_lines()] == ["Adam", "L-Adam"]


@pytest.mark.parametrize("value", ["1.5", "-0.1", "half"])
def test_success_threshold_out_of_range_is_one_line(store, tmp_path, capsys, value):
    argv = [
        "analyze",
        STUDY,
        "--tracking-uri",
        store,
        "--out",
        str(tmp_path),
        "--success-threshold",
        value,
    ]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--success-threshold must be an accuracy in [0, 1]" in err


def test_success_threshold_moves_the_line(store):
    rates = analyze(load_study(STUDY, store), success_threshold=0.975).tuning.success
    shallow = row(rates, arm="Adam", depth=3)  # 0.970..0.979: seeds 106..109 above 0.975
    assert (shallow["threshold"], shallow["n_success"]) == (0.975, 4)
