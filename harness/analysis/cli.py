"""`harness analyze STUDY`: the tables, plots and report of a study, printed and attached to it."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "analyze",
        help="tables, plots and a report of a study: does Langevin help, from which depth on",
        description=(
            "Load a study's trials from MLflow, aggregate them over seeds, pair each Langevin "
            "optimizer with its baseline seed by seed, fit the gain against depth, write "
            "summary.csv, report.md and plots into --out, log them as an MLflow 'analysis' run of "
            "the study, and print the main table."
        ),
    )
    parser.add_argument("study", help="study (MLflow experiment) name or id")
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
        "--metric", default="test_accuracy", help="metric compared (default: test_accuracy)"
    )
    parser.add_argument(
        "--target",
        type=float,
        default=None,
        metavar="ACC",
        help="val_accuracy to reach: adds epochs and seconds to target per optimizer",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from harness.analysis.load import load_study
    from harness.analysis.report import analyze, log_analysis_run, write_report

    study = load_study(args.study, args.tracking_uri)
    analysis = analyze(study, args.metric, args.target)
    out_dir = args.out or Path("analysis") / study.name
    write_report(analysis, out_dir)
    run_id = log_analysis_run(analysis, out_dir)
    print(analysis.text())
    print(f"\nreport: {out_dir / 'report.md'} (MLflow run {run_id} in study {study.name!r})")
    return 0
