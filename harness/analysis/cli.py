"""`harness analyze STUDY`: the tables, plots and report of a study, printed and attached to it."""

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
            "tuning budget (opda), and success rates on the final seeds (Wilson intervals, "
            "Fisher's exact test between twins); its other statistics use the final trials only."
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
    parser.add_argument(
        "--success-threshold",
        default=None,
        metavar="ACC",
        help=(
            "tuned studies: a final run trained when its test_accuracy is above ACC, in [0, 1] "
            "(default: chance accuracy of the dataset + 0.10)"
        ),
    )
    parser.set_defaults(func=run)


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


def run(args: argparse.Namespace) -> int:
    from harness.analysis.load import load_study
    from harness.analysis.report import analyze, log_analysis_run, write_report

    threshold = success_threshold(args.success_threshold)
    study = load_study(args.study, args.tracking_uri)
    analysis = analyze(study, args.metric, args.target, success_threshold=threshold)
    out_dir = args.out or Path("analysis") / study.name
    write_report(analysis, out_dir)
    run_id = log_analysis_run(analysis, out_dir)
    print(analysis.text())
    print(f"\nreport: {out_dir / 'report.md'} (MLflow run {run_id} in study {study.name!r})")
    return 0
