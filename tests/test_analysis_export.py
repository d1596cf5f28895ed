"""A study exported as plain files (runs.csv, epochs.csv, arms.csv, study.json) and read back is the
study MLflow gives: the same frames (values bit for bit, dtypes, column order) and the same
analysis (every table, the printed text, the markdown report), through the API and `harness analyze
--from`. The stores are the real sqlite MLflow stores of the untuned ("growth") and tuned
("bimodal") analysis tests.
"""

from __future__ import annotations

import dataclasses
import filecmp
import shutil

import pandas as pd
import pytest
from test_analysis import STUDY as UNTUNED
from test_analysis import store as untuned_store  # noqa: F401 (fixture)
from test_analysis_tuned import STUDY as TUNED
from test_analysis_tuned import store as tuned_store  # noqa: F401 (fixture)

from harness.analysis.export import FILES, export_study, load_exported
from harness.analysis.load import Study, load_study
from harness.analysis.report import analyze, markdown
from harness.cli import main
from harness.study.run_schema import RUN_KIND_ANALYSIS, TAG_RUN_KIND

STORES = {UNTUNED: "untuned_store", TUNED: "tuned_store"}
TABLE_FILES = [
    "summary.csv", "paired_seeds.csv", "gains.csv", "depth_trend.csv", "curves.csv",
    "time_to_target.csv",
]  # fmt: skip
TUNED_FILES = [
    "protocol.csv",
    "chosen.csv",
    "budget_curves.csv",
    "success.csv",
    "success_twins.csv",
    "success_trend.csv",
]


def _frames(analysis) -> dict[str, pd.DataFrame]:
    """Every frame of an analysis: its own fields, the tuned part's, the analysed trials/epochs."""
    frames = {"trials": analysis.study.trials, "epochs": analysis.study.epochs}
    for holder in (analysis, analysis.tuning):
        if holder is not None:
            for field in dataclasses.fields(holder):
                value = getattr(holder, field.name)
                if isinstance(value, pd.DataFrame):
                    frames[f"{type(holder).__name__}.{field.name}"] = value
    return frames


def _assert_same_study(loaded: Study, exported: Study) -> None:
    for field in ("name", "experiment_id", "tracking_uri", "metric_names", "tuned", "design"):
        assert getattr(exported, field) == getattr(loaded, field), field
    for field in ("trials", "epochs", "arms"):
        pd.testing.assert_frame_equal(
            getattr(exported, field), getattr(loaded, field), check_exact=True, obj=field
        )


@pytest.mark.parametrize("name", [UNTUNED, TUNED])
def test_exported_study_analyses_like_the_mlflow_one(request, tmp_path, name):
    """Exact equality, dtypes included (pandas does not tell None from NaN in a text column)."""
    loaded = load_study(name, request.getfixturevalue(STORES[name]))
    exported = load_exported(export_study(loaded, tmp_path))
    _assert_same_study(loaded, exported)
    if name == TUNED:  # the columns whose round trip is easiest to get wrong
        assert exported.trials["point"].dtype == "Int64" and exported.arms["chosen.point"][0] == "3"
        assert set(exported.trials["shared_config"]) == {""}
    else:
        assert exported.arms.empty and exported.trials["phase"].isna().all()

    expected = analyze(loaded, "test_accuracy", target=0.8)
    got = analyze(exported, "test_accuracy", target=0.8)
    frames, got_frames = _frames(expected), _frames(got)
    assert list(got_frames) == list(frames) and len(frames) == (18 if name == TUNED else 10)
    for key, frame in frames.items():
        pd.testing.assert_frame_equal(got_frames[key], frame, check_exact=True, obj=key)
    assert got.text() == expected.text()
    plots = list(expected.figures())
    assert list(got.figures()) == plots
    assert markdown(got, plots) == markdown(expected, plots)


def test_cli_analyses_an_exported_folder_without_mlflow(request, tmp_path, capsys):
    from mlflow import MlflowClient

    uri = request.getfixturevalue("tuned_store")

    first, second = tmp_path / "from-mlflow", tmp_path / "from-files"
    target = ["--target", "0.9"]
    assert main(["analyze", TUNED, "--tracking-uri", uri, "--out", str(first), *target]) == 0
    printed = capsys.readouterr().out
    assert {f.name for f in first.iterdir()} >= set(FILES)  # the raw runs beside the report

    client = MlflowClient(uri)
    experiment_id = client.get_experiment_by_name(TUNED).experiment_id

    def analysis_runs() -> int:
        return len(
            client.search_runs([experiment_id], f"tags.{TAG_RUN_KIND} = '{RUN_KIND_ANALYSIS}'")
        )

    logged = analysis_runs()
    assert logged == 1
    assert main(["analyze", "--from", str(first), "--out", str(second), *target]) == 0
    from_files = capsys.readouterr().out
    body, _, footer = from_files.rpartition("\nreport: ")
    assert body == printed.rpartition("\nreport: ")[0]
    assert "no MLflow analysis run logged" in footer and str(first) in footer
    assert analysis_runs() == logged
    for name in [*TABLE_FILES, *TUNED_FILES, "report.md", *FILES]:
        assert filecmp.cmp(first / name, second / name, shallow=False), name

    in_place = ["analyze", TUNED, "--from", str(second), "--out", str(second), *target]
    assert main(in_place) == 0  # STUDY may be given; the folder may be its own --out
    for name in ["report.md", *FILES]:
        assert filecmp.cmp(first / name, second / name, shallow=False), name


@pytest.fixture(scope="module")
def exported(request, tmp_path_factory):
    """The tuned study exported once; each test damages its own copy."""
    study = load_study(TUNED, request.getfixturevalue("tuned_store"))
    return export_study(study, tmp_path_factory.mktemp("export"))


def _drop_runs_column(folder):
    runs = pd.read_csv(folder / "runs.csv", dtype=str, keep_default_na=False)
    runs.drop(columns="arm_id").to_csv(folder / "runs.csv", index=False)


def _empty(folder):
    for path in folder.iterdir():
        path.unlink()


@pytest.mark.parametrize(
    ("damage", "argv", "message"),
    [
        (
            _empty,
            [],
            "is not an exported study: missing runs.csv, epochs.csv, arms.csv, study.json",
        ),
        (
            lambda f: (f / "epochs.csv").unlink(),
            [],
            "is not an exported study: missing epochs.csv (expected runs.csv, epochs.csv, "
            "arms.csv, study.json",
        ),
        (_drop_runs_column, [], "runs.csv has columns ["),
        (lambda f: (f / "study.json").write_text("{}"), [], "study.json does not describe"),
        (lambda f: None, ["growth"], "STUDY 'growth' does not match"),
    ],
)
def test_cli_refuses_a_folder_that_is_not_an_export_in_one_line(
    exported, tmp_path, capsys, damage, argv, message
):
    folder = shutil.copytree(exported, tmp_path / "export")
    damage(folder)
    assert main(["analyze", *argv, "--from", str(folder), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err and str(folder) in err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([], "give a STUDY (MLflow experiment name or id), or --from DIR"),
        (["--from", ".", "--tracking-uri", "sqlite:///x.db"], "--tracking-uri and --from exclude"),
    ],
)
def test_cli_needs_one_source_in_one_line(capsys, argv, message):
    assert main(["analyze", *argv]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err
