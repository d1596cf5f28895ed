"""`harness analyze STUDY`: the tables, plots and report of a study, printed and attached to it;
`harness analyze --from DIR`: the same from a study exported as plain files (`export`);
`harness analyze --from DIR --from DIR2`: several exported studies pooled (`pool`), secondary;
the exports of one study's parts (one name, several stores) joined into the study (`parts`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from harness.errors import HarnessError


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "analyze",
        help="tables, plots and a report of a study: does Langevin help, from which depth on",
        description=(
            "Load a study's trials from MLflow, aggregate them over seeds, pair each Langevin "
            "optimizer with its baseline seed by seed, fit the gain against depth (per-seed "
            "slopes), write summary.csv, report.md and plots into --out, log them as an MLflow "
            "'analysis' run of the study, and print the tables. Diverged and failed runs count "
            "at chance accuracy. A tuned study (trials tagged phase=tune/final) also gets each "
            "arm's chosen config with range-edge warnings, expected best validation accuracy vs "
            "tuning budget (opda), and success rates on the final seeds (Wilson intervals; "
            "between twins the difference with its Newcombe interval, Fisher's exact test and "
            "the exact McNemar test on seed pairs; a logistic depth trend of success, secondary); "
            "its other statistics use the final trials only. "
            "--out also gets the study's raw runs as plain files (runs.csv, epochs.csv, arms.csv, "
            "study.json); `--from DIR` analyses such a folder instead of MLflow, with the same "
            "tables and report, and logs no MLflow run."
        ),
    )
    parser.add_argument(
        "study",
        nargs="?",
        default=None,
        help=(
            "study (MLflow experiment) name or id; with --from it may be omitted, and when given "
            "must be the name or id in the folder's study.json"
        ),
    )
    parser.add_argument(
        "--from",
        dest="from_dirs",
        type=Path,
        action="append",
        default=None,
        metavar="DIR",
        help=(
            "analyse the runs exported in DIR (runs.csv, epochs.csv, arms.csv, study.json, as "
            "an earlier `harness analyze` wrote them into its --out) instead of reading MLflow; "
            "no MLflow 'analysis' run is logged. Given twice or more, the studies are pooled "
            "into one secondary analysis (e.g. a depth trend across studies that ran other "
            "depths; two studies that ran one dataset/model/depth are refused), named "
            "STUDY1+STUDY2; no declared test is replayed. Folders of one study (the exports "
            "of its parts in several stores, `harness export`, in the order they ran) are "
            "joined into that study instead"
        ),
    )
    parser.add_argument(
        "--tracking-uri",
        default=None,
        metavar="URI",
        help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        metavar="DIR",
        help="output directory (default: analysis/STUDY)",
    )
    parser.add_argument(
        "--metric", default="test_accuracy",
        help="metric compared (default: test_accuracy; another metric's files are named "
             "report-METRIC.md, gains-METRIC.csv, ...: none is overwritten)"
    )
    parser.add_argument(
        "--target",
        type=float,
        default=None,
        metavar="ACC",
        help="val_accuracy to reach: adds epochs and seconds to target per optimizer",
    )
    parser.add_argument(
        "--success-threshold",
        default=None,
        metavar="ACC",
        help=(
            "tuned studies: a final run trained when its test_accuracy is above ACC, in [0, 1] "
            "(default: chance accuracy of the dataset + 0.10)"
        ),
    )
    parser.add_argument(
        "--per-arm",
        default=None,
        metavar="NAMES",
        help=(
            "comma-separated hyperparameters each arm chose for itself (e.g. learning_rate,sigma "
            "in a rerun of a tuned study's choices): they neither name arms nor keep a Langevin "
            "arm from pairing with its plain twin seed by seed, as tuned ones in a tuned study"
        ),
    )
    parser.set_defaults(func=run)


def _names(text: str | None) -> tuple[str, ...]:
    return tuple(name.strip() for name in text.split(",") if name.strip()) if text else ()


def success_threshold(text: str | None) -> float | None:
    """The --success-threshold value: None, or an accuracy in [0, 1] (else a one-line error)."""
    if text is None:
        return None
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0 <= value <= 1:
        raise HarnessError(f"--success-threshold must be an accuracy in [0, 1], got {text!r}")
    return value


def study_from_mlflow(study: str, tracking_uri: str | None, per_arm: tuple[str, ...] = ()):
    """The study named (or numbered) `study` in the MLflow store (default: the environment's);
    an unknown study or store is refused in one line before MLflow's and pandas' imports."""
    from harness.study.tracking_uri import (
        default_tracking_uri,
        find_experiment,
        mlflow_client,
        refuse_unknown_study,
    )

    uri = tracking_uri or default_tracking_uri()
    refuse_unknown_study(uri, study)  # a SQLite store: before MLflow's import
    find_experiment(mlflow_client(uri), study, uri)  # refused before pandas' import
    from harness.analysis.load import load_study

    return load_study(study, uri, per_arm=per_arm)


def load(args: argparse.Namespace):
    """The study to analyse: from MLflow, or from the exported folder of `--from`."""
    if args.from_dirs is None:
        if args.study is None:
            raise HarnessError("give a STUDY (MLflow experiment name or id), or --from DIR")
        return study_from_mlflow(args.study, args.tracking_uri, _names(args.per_arm))
    from harness.analysis.export import META, load_exported

    if args.per_arm:
        raise HarnessError("--per-arm relabels the arms while reading MLflow; an exported folder "
                           "keeps the arms it was exported with (--from takes no --per-arm)")
    if args.tracking_uri is not None:
        raise HarnessError("--tracking-uri and --from exclude each other: --from reads no MLflow")
    studies = [load_exported(directory) for directory in args.from_dirs]
    if len(studies) > 1 and len({study.name for study in studies}) == 1:
        from harness.analysis.parts import join

        study, replaced = join(studies)
        print(f"study {study.name!r}: {len(studies)} parts joined ({len(study.trials)} runs"
              + (f"; {replaced} run(s) of an earlier part replaced by a later part's rerun"
                 if replaced else "") + ")")
        studies = [study]
    elif len(studies) > 1:
        if args.study is not None:
            raise HarnessError("several --from folders are pooled into one study named after "
                               "theirs: give no STUDY with them")
        from harness.analysis.pool import pool

        return pool(studies)
    (study,), directory = studies, args.from_dirs[-1]
    if args.study not in (None, study.name, study.experiment_id):
        raise HarnessError(
            f"STUDY {args.study!r} does not match {directory / META}, which holds study "
            f"{study.name!r} (experiment {study.experiment_id}): give that name or id, or none"
        )
    return study


def run(args: argparse.Namespace) -> int:
    threshold = success_threshold(args.success_threshold)
    study = load(args)  # a wrong name or store is refused before the analysis' imports
    from harness.analysis.export import export_study
    from harness.analysis.report import analyze, log_analysis_run, write_report

    analysis = analyze(study, args.metric, args.target, success_threshold=threshold)
    out_dir = args.out or Path("analysis") / study.name
    report = write_report(analysis, out_dir)[-1]
    export_study(study, out_dir)
    print(analysis.text())
    if args.from_dirs is not None:
        print(
            f"\nreport: {report} (from the runs exported in "
            f"{', '.join(str(d) for d in args.from_dirs)}; "
            "no MLflow analysis run logged)"
        )
        return 0
    run_id = log_analysis_run(analysis, out_dir)
    print(
        f"\nreport: {report} (MLflow run {run_id} in study {study.name!r}; "
        "its runs exported beside it)"
    )
    return 0
