"""The defects an independent audit of the analysis found, each on a small input the old code got
wrong: two configs under one arm name cross-paired, ties broken by floating point, zero gains
dropped without a word, NaN p-values leaving the Holm family, a percentile bootstrap labelled BCa,
no interval or paired test for a success-rate difference, no depth trend of success, a traceback
for a tuned study without finals, and a continuation taken for a replication."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.stats
import test_analysis_tuned as tuned
from analysis_store import row, sqlite_store
from test_analysis_audit import gains_of, trials
from test_analysis_tuned import store as tuned_store  # noqa: F401 (fixture)

from harness.analysis.intervals import bca_interval
from harness.analysis.load import EPOCH_KEYS, Study, continuations, label_arms, load_study
from harness.analysis.paired import gain_stats, holm
from harness.analysis.report import analyze, gains_title
from harness.analysis.success import success_rates, successes, twin_tests
from harness.analysis.success_trend import success_trend
from harness.analysis.tables import gains_table, twins_table
from harness.cli import main
from harness.errors import HarnessError
from harness.study.run_schema import PHASE_TUNE, STATUS_FINISHED


def _analysis(frame: pd.DataFrame, epochs: pd.DataFrame | None = None):
    """`report.analyze` (test_accuracy) of an untuned study of the trials in `frame` with the
    per-epoch metrics `epochs` (default: each run one epoch long, its test accuracy as its
    val_accuracy)."""
    frame = frame.assign(phase=None)
    if "run_id" not in frame:
        frame = frame.assign(run_id=[f"r{i}" for i in range(len(frame))])
    if epochs is None:
        epochs = frame[EPOCH_KEYS].assign(epoch=1, val_accuracy=frame["test_accuracy"])
    metrics = ("test_accuracy", "val_accuracy")
    study = Study("defects", "0", "sqlite:///none", frame, epochs, metrics, pd.DataFrame())
    return analyze(study, "test_accuracy")


def _keyed(*runs: dict) -> list[dict]:
    """`runs` with a run id and a trial key each, as the loader gives them."""
    return [
        {"run_id": f"r{i}", "trial_key": f"{run['optimizer']}-{run['seed']}-{i}", **run}
        for i, run in enumerate(runs)
    ]


def test_two_configs_under_one_arm_name_are_refused_not_cross_paired():
    # `--per-arm learning_rate` over a study that ran two learning rates per twin: the learning
    # rate no longer names the arms, so each arm has two runs per seed
    runs = _keyed(
        *[
            {"optimizer": optimizer, "seed": s, "learning_rate": lr, "test_accuracy": acc}
            for lr in (1e-3, 1e-2)
            for optimizer, acc in (("RMSprop", 0.5), ("L-RMSprop", 0.6))
            for s in range(3)
        ]
    )
    frame = label_arms(trials(*runs).drop(columns=["arm", "shared_config"]), ["epochs"])
    assert set(frame["arm"]) == {"RMSprop", "L-RMSprop"}  # one name for two configs
    with pytest.raises(HarnessError) as refused:
        gains_of(frame)  # was: 3 seeds gave 6 pairs
    message = str(refused.value)
    assert "\n" not in message and "L-RMSprop" in message and "seed 0" in message
    assert "L-RMSprop-0-3" in message and "L-RMSprop-0-9" in message  # the two runs' keys
    with pytest.raises(HarnessError, match=r"'L-RMSprop'.* seed 0 .*L-RMSprop-0-3"):
        success_rates(frame)  # was: n = 6 runs of 3 seeds


def test_a_duplicated_baseline_run_is_refused_not_counted_twice():
    runs = _keyed(
        *[{"optimizer": "RMSprop", "seed": s, "test_accuracy": 0.5} for s in range(3)],
        *[{"optimizer": "L-RMSprop", "seed": s, "test_accuracy": 0.6} for s in range(3)],
        {"optimizer": "RMSprop", "seed": 2, "test_accuracy": 0.5},
    )
    with pytest.raises(HarnessError, match=r"'RMSprop'.* seed 2 .*RMSprop-2-2.*RMSprop-2-6"):
        gains_of(trials(*runs))


def test_two_baseline_arms_pairing_with_one_langevin_arm_are_refused():
    # two baseline arms of one pair and shared_config (a second display name under the same pair
    # tag), both partners of the same L-RMSprop seeds
    runs = _keyed(
        *[{"optimizer": "RMSprop", "seed": s, "test_accuracy": 0.5} for s in range(3)],
        *[{"optimizer": "RMSprop (other)", "seed": s, "test_accuracy": 0.5} for s in range(3)],
        *[{"optimizer": "L-RMSprop", "seed": s, "test_accuracy": 0.6} for s in range(3)],
    )
    with pytest.raises(HarnessError, match=r"'RMSprop', 'RMSprop \(other\)'.* seed 0 "):
        gains_of(trials(*runs))


def test_equal_gains_tie_whatever_the_last_bits_of_their_accuracies():
    # +1009 and −1009 of 10 000 test images: 0.9123 − 0.8114 and 0.8114 − (0.7 + 0.2123), whose
    # magnitudes differ in the last bits (the loss ranked 1, the win 2)
    accuracies = [(0.9123, 0.8114), (0.8114, 0.7 + 0.2123)]
    accuracies += [(0.6 + 0.01 * s, 0.4) for s in range(6)]  # six clear wins
    assert abs(0.8114 - (0.7 + 0.2123)) != 0.9123 - 0.8114
    runs = [
        {"optimizer": optimizer, "seed": s, "test_accuracy": accuracy}
        for s, pair in enumerate(accuracies)
        for optimizer, accuracy in zip(("L-RMSprop", "RMSprop"), pair, strict=True)
    ]
    gain = row(gains_of(trials(*runs)), arm="L-RMSprop")
    # ranks 1.5 and 1.5: two-sided exact p = 2 · #{sign flips with W− ≤ 1.5} / 2^8 = 2 · 3 / 256
    assert gain["p_wilcoxon"] == pytest.approx(6 / 256)  # was 4 / 256 = 0.0156


def test_zero_gains_left_out_of_wilcoxon_are_counted_and_said():
    # five seeds tie (both twins at chance), three win: Wilcoxon ranks the three wins only
    accuracies = [(0.1135, 0.1135)] * 5 + [(0.95, 0.90), (0.96, 0.90), (0.97, 0.90)]
    runs = [
        {"optimizer": optimizer, "seed": s, "test_accuracy": accuracy}
        for s, pair in enumerate(accuracies)
        for optimizer, accuracy in zip(("L-RMSprop", "RMSprop"), pair, strict=True)
    ]
    gain = row(gains_of(trials(*runs)), arm="L-RMSprop")
    assert (gain["n_pairs"], gain["n_nonzero"]) == (8, 3)
    assert "Wilcoxon on the 3 non-zero gains (5 zero gains dropped)" in gain["note"]
    # exact over the 2^3 signs of the three wins, not scipy < 1.15's normal approximation (0.109)
    assert gain["p_wilcoxon"] == pytest.approx(2 / 2**3)


def test_a_depth_without_a_p_value_still_counts_in_the_holm_family():
    gains = pd.DataFrame(
        {
            "dataset": "mnist",
            "model": "dense",
            "pair": "adam",
            "arm": "L-Adam",
            "p_wilcoxon": [0.01, 0.04, np.nan],  # depth 40: too few seeds for a test
        }
    )
    adjusted = holm(gains, "p_wilcoxon")
    assert adjusted[:2].tolist() == pytest.approx([0.01 * 3, 0.04 * 2])  # m = 3, not 2
    assert np.isnan(adjusted[2])


def test_the_report_says_which_family_holm_corrects_over_and_that_it_is_secondary():
    runs = [
        {"optimizer": optimizer, "seed": s, "depth": depth, "test_accuracy": acc + 0.01 * s}
        for depth in (3, 30)
        for optimizer, acc in (("RMSprop", 0.5), ("L-RMSprop", 0.6))
        for s in range(3)
    ]
    (title,) = [t for t, _ in _analysis(trials(*runs)).sections() if t.startswith("Paired gains")]
    assert "Holm: secondary" in title
    assert "family: one Langevin arm over the depths of this analysis" in title


NEARLY_CONSTANT = [0.0] * 7 + [2.788498200899441e-272]  # BCa undefined: scipy gives NaN


def test_a_bootstrap_interval_says_when_it_fell_back_to_the_percentile_method():
    assert bca_interval(NEARLY_CONSTANT)[2] == "percentile"
    assert bca_interval([0.1 * i for i in range(8)])[2] == "BCa"
    gains = pd.DataFrame(
        [
            {"dataset": "mnist", "model": "dense", "depth": depth, "arm": "L-Adam",
             "baseline_arm": "Adam", "n_pairs": 8, "n_failed_baseline": 0,
             "n_failed_langevin": 0, "p_wilcoxon_holm": np.nan, "note": "", "unpaired": "",
             **gain_stats(np.array(values), "test_accuracy")}
            for depth, values in ((3, NEARLY_CONSTANT), (30, [0.01 * i for i in range(8)]))
        ]
    )  # fmt: skip
    assert gains["boot_method"].tolist() == ["percentile", "BCa"]
    cells = gains_table(gains, "test_accuracy")["bootstrap CI"].tolist()
    assert cells[0].endswith(" percentile") and not cells[1].endswith(" percentile")
    title = gains_title(gains)  # the report's section title
    assert "bootstrap CI: BCa; percentile where marked (BCa undefined)" in title
    assert "bootstrap CI: BCa; p Holm" in gains_title(gains[gains["depth"] == 30])


def test_a_tuned_study_before_its_final_runs_is_one_line(tmp_path, capsys):
    uri, client, ids = sqlite_store(tmp_path, tuned.STUDY)
    for optimizer in ("Adam", "L-Adam"):  # the tuning phase of depth 3 only: no final run yet
        parent = tuned._arm_run(client, ids[tuned.STUDY], 3, optimizer)
        sigma = tuned.TUNE_SIGMA if optimizer == "L-Adam" else [0.0] * len(tuned.TUNE_LR)
        for point, (lr, s, score) in enumerate(
            zip(tuned.TUNE_LR, sigma, tuned.TUNE_SCORES, strict=True)
        ):
            tuned._trial(
                client, ids[tuned.STUDY], parent, 3, optimizer, PHASE_TUNE, point, 0, lr, s,
                score, STATUS_FINISHED,
            )  # fmt: skip
    argv = ["analyze", tuned.STUDY, "--tracking-uri", uri, "--out", str(tmp_path / "out")]
    for metric in ("val_accuracy", "test_accuracy"):  # val_accuracy was a KeyError traceback
        capsys.readouterr()
        assert main([*argv, "--metric", metric]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1
        assert "study 'bimodal' has no finished final run yet (12 tuning trials, 0 final)" in err
        assert "finish its final phase (`harness run FILE`" in err


def _trained(depth: int, seed: int, langevin: bool) -> bool:
    """Planted: the baseline trains less often the deeper it is, its Langevin twin does not."""
    if langevin:
        return seed % 5 != 0  # 8 of 10 at every depth
    return seed < {3: 9, 20: 6, 40: 2}[depth]


FINALS = trials(
    *[
        {"optimizer": optimizer, "seed": seed, "depth": depth,
         "test_accuracy": 0.95 if _trained(depth, seed, optimizer.startswith("L-")) else 0.1}
        for depth in (3, 20, 40)
        for optimizer in ("RMSprop", "L-RMSprop")
        for seed in range(10)
    ]
)  # fmt: skip


def test_success_depth_trend_is_the_logistic_interaction_with_seeds_as_clusters():
    import statsmodels.api as sm

    (fit,) = success_trend(FINALS).itertuples()
    assert (fit.arm, fit.baseline_arm, fit.depths, fit.n_runs, fit.n_seeds) == (
        "L-RMSprop", "RMSprop", "3, 20, 40", 60, 10,
    )  # fmt: skip
    # the interaction is the Langevin twin's log-odds slope minus its baseline's
    slopes = {}
    for langevin in (False, True):
        side = FINALS[(FINALS["variant"] != "baseline") == langevin]
        y = (side["test_accuracy"] > 0.2).astype(float)
        slopes[langevin] = sm.Logit(y, sm.add_constant(side["depth"].astype(float))).fit(
            disp=0
        ).params["depth"]
    assert fit.interaction == pytest.approx(slopes[True] - slopes[False], rel=1e-6)
    assert fit.interaction > 0  # the gap in log-odds grows with depth
    # its standard error, p and interval: cluster-robust over seeds, t with 10 − 1 df
    x = FINALS["variant"].ne("baseline").astype(float).to_numpy()
    depth = FINALS["depth"].astype(float).to_numpy()
    design = np.column_stack([np.ones_like(x), depth, x, depth * x])
    expected = sm.GLM(
        (FINALS["test_accuracy"] > 0.2).astype(float).to_numpy(), design,
        family=sm.families.Binomial(),
    ).fit(cov_type="cluster", cov_kwds={"groups": FINALS["seed"].to_numpy()}, use_t=True)
    assert fit.se == pytest.approx(expected.bse[3], rel=1e-6)
    assert fit.p == pytest.approx(expected.pvalues[3], rel=1e-6)
    assert (fit.ci_low, fit.ci_high) == pytest.approx(tuple(expected.conf_int()[3]), rel=1e-6)
    assert fit.covariance == "cluster-robust (seeds)" and fit.note == ""


def test_separated_or_all_successful_success_gives_nan_and_a_note():
    all_trained = FINALS.assign(test_accuracy=0.95)
    (fit,) = success_trend(all_trained).itertuples()
    assert np.isnan(fit.interaction) and np.isnan(fit.p)
    assert "every run of RMSprop trained" in fit.note
    # the baseline trains at depth 3 only: its log-odds slope is −∞
    separated = FINALS.assign(
        test_accuracy=np.where(
            (FINALS["variant"] == "baseline") & (FINALS["depth"] > 3), 0.1, FINALS["test_accuracy"]
        )
    )
    (fit,) = success_trend(separated).itertuples()
    assert np.isnan(fit.interaction) and np.isnan(fit.se)
    assert "RMSprop: trained and untrained runs are separated by depth" in fit.note


def test_the_tuned_report_has_the_success_depth_trend(tuned_store):  # noqa: F811
    analysis = analyze(load_study(tuned.STUDY, tuned_store))
    (fit,) = analysis.tuning.trend.itertuples()  # bimodal: depth 3 always trains: separated
    assert fit.arm == "L-Adam" and np.isnan(fit.interaction) and "separated" in fit.note
    titles = [title for title, _ in analysis.sections()]
    assert "Success vs depth (logistic, secondary)" in " ".join(titles)


def test_a_success_rate_difference_has_its_newcombe_interval_and_the_paired_mcnemar_test():
    from statsmodels.stats.proportion import confint_proportions_2indep

    finals = FINALS[FINALS["depth"] == 40]
    finals = finals[~((finals["variant"] == "baseline") & (finals["seed"] == 9))]  # not run
    twins = twin_tests(success_rates(finals), successes(finals))
    (twin,) = twins.itertuples()
    # L-RMSprop trained on seeds 1-4, 6-9 (8/10), RMSprop on 0 and 1 of the 9 seeds it ran (2/9)
    assert (twin.n_success, twin.n, twin.baseline_n_success, twin.baseline_n) == (8, 10, 2, 9)
    expected = confint_proportions_2indep(8, 10, 2, 9, method="newcomb", compare="diff")
    assert (twin.diff_low, twin.diff_high) == pytest.approx(expected)
    # on the 9 seeds both ran: L-RMSprop alone trained on 2, 3, 4, 6, 7, 8; RMSprop alone on 0
    assert (twin.n_seed_pairs, twin.langevin_only, twin.baseline_only) == (9, 6, 1)
    assert twin.p_mcnemar == pytest.approx(scipy.stats.binomtest(1, 7).pvalue)  # exact: 0.125
    table = twins_table(twins)
    assert table["rate difference (pp)"][0] == "+57.78 [+12.86, +79.18]"
    assert table["p McNemar (seed pairs)"][0] == "0.125"


def _curves(frame: pd.DataFrame, bump: dict) -> pd.DataFrame:
    """One row per epoch of every run in `frame`: learning metrics set by its optimizer, seed and
    epoch only (so a longer run repeats a shorter one's epochs), plus `bump[(depth, epochs)]`;
    epoch times differ from run to run, as they do."""
    rows = []
    for i, run in enumerate(frame.itertuples()):
        for epoch in range(1, run.epochs + 1):
            accuracy = 0.5 + 0.01 * run.seed + 0.001 * epoch + 0.05 * (run.sigma > 0)
            accuracy += bump.get((run.depth, run.epochs), 0.0)
            rows.append({"run_id": run.run_id, "epoch": epoch, "train_loss": 1 - accuracy,
                         "train_accuracy": accuracy, "val_loss": 1 - accuracy,
                         "val_accuracy": accuracy, "epoch_time_s": 2.0 + i})  # fmt: skip
    return frame[EPOCH_KEYS].merge(pd.DataFrame(rows), on="run_id")


def test_a_longer_rerun_of_the_same_seeds_is_said_to_be_a_continuation():
    runs = [
        {"optimizer": optimizer, "seed": s, "depth": depth, "epochs": epochs,
         "test_accuracy": 0.5 + 0.01 * s + 0.001 * epochs + 0.05 * optimizer.startswith("L-")}
        for depth in (3, 30)
        for epochs in (10, 30)
        for optimizer in ("RMSprop", "L-RMSprop")
        for s in range(3)
    ]  # fmt: skip
    frame = trials(*runs).assign(run_id=[f"r{i}" for i in range(len(runs))], phase=None)
    # depth 30: the 30-epoch runs repeat the 10-epoch runs' epochs 1-10 (a continuation);
    # depth 3: their curves differ (another run of the seeds, e.g. another data order)
    analysis = _analysis(frame, _curves(frame, {(3, 30): 0.002}))
    found = analysis.continuations
    assert found[["depth", "arms", "epochs", "seeds", "shared_epochs"]].values.tolist() == [
        [30, "L-RMSprop (epochs=10); L-RMSprop (epochs=30)", "10, 30", "0, 1, 2", 10],
        [30, "RMSprop (epochs=10); RMSprop (epochs=30)", "10, 30", "0, 1, 2", 10],
    ]
    (notes,) = [body for title, body in analysis.sections() if title.startswith("Continuations")]
    assert notes[1] == (
        "RMSprop (epochs=10); RMSprop (epochs=30) at mnist/dense depth 30: seeds 0, 1, 2 ran for "
        "10, 30 epochs with the same per-epoch metrics over their first 10 epochs: a "
        "continuation of the same seeds, not a replication"
    )


def test_a_rerun_whose_stretched_schedule_parts_it_later_still_shares_its_first_epochs():
    runs = [
        {"optimizer": "L-RMSprop", "seed": 0, "epochs": epochs, "test_accuracy": 0.9}
        for epochs in (10, 30)
    ]
    frame = trials(*runs).assign(run_id=["short", "long"], phase=None)
    curves = _curves(frame, {})
    later = (curves["run_id"] == "long") & (curves["epoch"] > 8)  # its learning rate drops later
    curves.loc[later, "val_accuracy"] += 0.01
    (found,) = continuations(frame, curves).itertuples()
    assert (found.seeds, found.shared_epochs) == ("0", 8)
