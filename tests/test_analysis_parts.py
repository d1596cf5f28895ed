"""One study run in two stores, joined (`harness analyze --from PART1 --from PART2`, one study's
name): its tuning logged in one store and its finals in another give the whole study's tables; a
trial both parts logged keeps the later part's run; parts of two studies are refused in one line.
The study is the tuned analysis tests' "bimodal" (depths 3 and 30) in its real sqlite store."""

from __future__ import annotations

import dataclasses

import pandas as pd
import pytest
from test_analysis_pool import _sorted, assert_same_tables
from test_analysis_tuned import STUDY as TUNED
from test_analysis_tuned import store as tuned_store  # noqa: F401 (fixture)

from harness.analysis.export import export_study
from harness.analysis.load import Study, load_study
from harness.analysis.parts import join
from harness.analysis.report import analyze
from harness.cli import main
from harness.errors import HarnessError


def _store_part(study: Study, keep, uri: str) -> Study:
    """The runs `keep` selects (a boolean Series over the trials), as another store logged them."""
    trials = study.trials[keep].reset_index(drop=True)
    epochs = study.epochs[study.epochs["run_id"].isin(trials["run_id"])].reset_index(drop=True)
    return dataclasses.replace(study, tracking_uri=uri, trials=trials, epochs=epochs)


@pytest.fixture(scope="module")
def whole(tuned_store):  # noqa: F811 (fixture)
    return load_study(TUNED, tuned_store)


def test_tuning_in_one_store_and_finals_in_another_join_to_the_whole_study(whole):
    tuning = _store_part(whole, whole.trials["phase"] == "tune", "sqlite:///first.db")
    finals = _store_part(whole, whole.trials["phase"] == "final", "sqlite:///second.db")
    joined, replaced = join([tuning, finals])
    assert replaced == 0 and joined.name == whole.name
    assert joined.tracking_uri == "sqlite:///first.db+sqlite:///second.db"
    assert_same_tables(analyze(joined), analyze(whole))


def test_a_trial_both_parts_logged_keeps_the_later_part_run(whole):
    """The first store was left while its finals ran: the runs it logged of them are stale (here:
    at chance), the second store ran that phase again."""
    final = whole.trials["phase"] == "final"
    stale = whole.trials[final].head(5).assign(
        test_accuracy=0.1, run_id=lambda t: "stale-" + t["run_id"])
    first = _store_part(whole, ~final, "sqlite:///first.db")
    first = dataclasses.replace(first, trials=pd.concat([first.trials, stale], ignore_index=True))
    second = _store_part(whole, final, "sqlite:///second.db")
    joined, replaced = join([first, second])
    assert replaced == 5 and len(joined.trials) == len(whole.trials)
    assert not joined.trials["run_id"].str.startswith("stale-").any()
    assert set(joined.epochs["run_id"]) <= set(joined.trials["run_id"])
    pd.testing.assert_frame_equal(_sorted(analyze(joined).gains),
                                  _sorted(analyze(whole).gains))
    reversed_, _ = join([second, first])  # the order the parts ran decides
    assert reversed_.trials["run_id"].str.startswith("stale-").sum() == 5


def test_parts_of_two_studies_are_refused_and_the_cli_joins_one_study(whole, tmp_path, capsys):
    with pytest.raises(HarnessError, match="parts of one study must share its name"):
        join([whole, dataclasses.replace(whole, name="other")])
    tuning = export_study(_store_part(whole, whole.trials["phase"] == "tune", "a"),
                          tmp_path / "a")
    finals = export_study(_store_part(whole, whole.trials["phase"] == "final", "b"),
                          tmp_path / "b")
    out = tmp_path / "joined"
    assert main(["analyze", "--from", str(tuning), "--from", str(finals), "--out", str(out)]) == 0
    assert f"study '{whole.name}': 2 parts joined ({len(whole.trials)} runs)" in \
        capsys.readouterr().out
    assert (out / "summary.csv").exists() and (out / "success.csv").exists()
