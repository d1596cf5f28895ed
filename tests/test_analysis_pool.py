"""Studies pooled into one secondary analysis (`harness analyze --from A --from B`): a tuned study
split by depth into two exported studies and pooled back gives the whole study's tables, its depth
trend included (which neither half has alone); the report names the studies; the pooled folder
reads back to the same tables; a group two studies both ran, mixed tuned and untuned studies and a
STUDY beside several folders are refused in one line. The study is the tuned analysis tests'
"bimodal" (depths 3 and 30) in its real sqlite MLflow store.
"""

from __future__ import annotations

import dataclasses
import filecmp

import pandas as pd
import pytest
from test_analysis import STUDY as UNTUNED
from test_analysis import store as untuned_store  # noqa: F401 (fixture)
from test_analysis_tuned import STUDY as TUNED
from test_analysis_tuned import store as tuned_store  # noqa: F401 (fixture)

from harness.analysis.export import export_study, load_exported
from harness.analysis.load import Study, load_study
from harness.analysis.pool import pool, pooled_studies
from harness.analysis.report import POOLED_TITLE, analyze, markdown
from harness.cli import main
from harness.errors import HarnessError

COMPARED = ["summary", "per_seed", "gains", "trend", "curves"]
COMPARED_TUNED = ["success", "twins", "trend", "choices", "protocol"]


def _part(study: Study, name: str, depths: set[int]) -> Study:
    """The runs of `study` at `depths`, as a study of its own named `name`."""
    trials = study.trials[study.trials["depth"].isin(depths)].reset_index(drop=True)
    epochs = study.epochs[study.epochs["run_id"].isin(trials["run_id"])].reset_index(drop=True)
    arms = study.arms if study.arms.empty else \
        study.arms[study.arms["arm_id"].isin(trials["arm_id"])].reset_index(drop=True)
    return dataclasses.replace(study, name=name, experiment_id=name, trials=trials,
                               epochs=epochs, arms=arms)


@pytest.fixture(scope="module")
def halves(tuned_store):  # noqa: F811 (fixture)
    whole = load_study(TUNED, tuned_store)
    return whole, _part(whole, "shallow", {3}), _part(whole, "deep", {30})


def _sorted(frame: pd.DataFrame) -> pd.DataFrame:
    keys = [c for c in ("dataset", "model", "depth", "arm", "comparison", "optimizer", "epoch",
                        "seed", "arm_id", "hyper") if c in frame]
    return frame.sort_values(keys, ignore_index=True) if keys else frame


def assert_same_tables(got, expected) -> None:
    """The two analyses' COMPARED tables and tuned COMPARED_TUNED tables are equal, row order aside."""
    for field in COMPARED:
        pd.testing.assert_frame_equal(_sorted(getattr(got, field)),
                                      _sorted(getattr(expected, field)), obj=field)
    for field in COMPARED_TUNED:
        pd.testing.assert_frame_equal(_sorted(getattr(got.tuning, field)),
                                      _sorted(getattr(expected.tuning, field)), obj=field)


def test_the_halves_pooled_give_the_whole_study_tables(halves):
    whole, shallow, deep = halves
    pooled = pool([shallow, deep])
    assert pooled.name == "shallow+deep" and pooled.design is None
    assert list(pooled_studies(pooled.trials)["study"]) == ["shallow", "deep"]
    expected, got = analyze(whole), analyze(pooled)
    assert_same_tables(got, expected)
    # the depth trend needs both depths: one half alone has no pair of depths to fit
    assert len(expected.trend) and set(expected.trend["depths"].astype(str)) != {"3"}
    assert analyze(shallow).trend["slope"].isna().all()


def test_the_report_says_which_studies_it_pools_and_costs_each_apart(halves):
    _, shallow, deep = halves
    analysis = analyze(pool([shallow, deep]))
    titles = [title for title, _ in analysis.sections()]
    assert titles[0] == POOLED_TITLE
    table = analysis.sections()[0][1]
    assert list(table["study"]) == ["shallow", "deep"]
    assert list(table["groups"]) == ["mnist/dense depths 3", "mnist/dense depths 30"]
    report = markdown(analysis, [])
    assert "# Analysis of study `shallow+deep`" in report and POOLED_TITLE in report
    phases = list(analysis.cost["phase"])
    assert phases and all(p.split(": ")[0] in ("shallow", "deep") for p in phases)
    assert not any(title.startswith("Verdict: the declared tests") for title in titles)


def test_a_single_study_has_no_pooled_section(halves):
    """Not even one run in parts, whose runs log several `study` names (one per part's file)."""
    whole, _, _ = halves
    parts = whole.trials.assign(study=whole.trials["depth"].map({3: "part-a", 30: "part-b"}))
    in_parts = dataclasses.replace(whole, trials=parts)
    assert POOLED_TITLE not in [title for title, _ in analyze(in_parts).sections()]
    assert pooled_studies(in_parts.trials).empty
    assert not any(": " in phase for phase in analyze(in_parts).cost["phase"])


def test_refusals_name_what_is_wrong(halves, untuned_store):  # noqa: F811 (fixture)
    whole, shallow, deep = halves
    with pytest.raises(HarnessError, match=r"'shallow' and 'again' both ran mnist/dense/3"):
        pool([shallow, dataclasses.replace(shallow, name="again")])
    with pytest.raises(HarnessError, match="at least two"):
        pool([shallow])
    with pytest.raises(HarnessError, match="given twice"):
        pool([shallow, shallow])
    untuned = load_study(UNTUNED, untuned_store)
    untuned = _part(untuned, "untuned", set(untuned.trials["depth"]) - {3, 30})
    with pytest.raises(HarnessError, match=r"tuned studies \(deep\) and untuned ones"):
        pool([deep, untuned])


def test_cli_pools_exported_folders_and_the_pooled_folder_reads_back(halves, tmp_path, capsys):
    _, shallow, deep = halves
    a, b = export_study(shallow, tmp_path / "a"), export_study(deep, tmp_path / "b")
    out = tmp_path / "pooled"
    assert main(["analyze", "--from", str(a), "--from", str(b), "--out", str(out)]) == 0
    assert "Studies pooled" in capsys.readouterr().out
    again = tmp_path / "again"
    assert main(["analyze", "--from", str(out), "--out", str(again)]) == 0
    for name in ("summary.csv", "gains.csv", "depth_trend.csv", "success.csv",
                 "success_trend.csv", "cost.csv", "report.md"):
        assert filecmp.cmp(out / name, again / name, shallow=False), name
    assert load_exported(again).name == "shallow+deep"
    assert main(["analyze", "shallow", "--from", str(a), "--from", str(b)]) == 2
    error = capsys.readouterr().err
    assert "give no STUDY" in error and len(error.strip().splitlines()) == 1
