"""`harness export`: a study's raw runs and saved state as plain files, without analysing it.

    harness export NAME --out DIR                      # runs.csv, epochs.csv, arms.csv, study.json, state/
    harness run SPACE.yaml --state-from DIR            # in another store: go on where it stopped
    harness analyze --from DIR1 --from DIR2            # both stores' exports of NAME, joined

The record of a study that has not finished (`harness analyze` judges finished finals only), or
the way to go on with it in another store: `state/` holds the files that carry its progress
between phases (`harness.study.carry`), the CSVs every run the store has logged (`export`).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from harness.analysis.cli import study_from_mlflow


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "export",
        help="write a study's raw runs and saved state into a folder (no analysis)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("study", help="study (MLflow experiment) name or id")
    parser.add_argument("--out", required=True, metavar="DIR", help="folder to write into")
    parser.add_argument("--tracking-uri", help="MLflow tracking URI (default: "
                        "$MLFLOW_TRACKING_URI, else sqlite:///mlflow.db)")
    parser.add_argument("--storage-path", help="where the study's Tune state lives (default: "
                        "./results, as `harness run`)")
    parser.add_argument("--state-name", metavar="NAME", help="the study folder under the "
                        "storage path whose state to save (default: the study's name; a part "
                        "run with --depths: NAME-dD1-D2)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from harness.study.carry import (
        STATE_FOLDER,
        read_ended,
        save_state,
        state_names,
        write_ended,
    )
    from harness.study.runner import resolve_storage

    study = study_from_mlflow(args.study, args.tracking_uri)
    from harness.analysis.export import export_study
    out = Path(args.out)
    export_study(study, out)
    phases = study.trials["phase"].fillna("-").value_counts().to_dict()
    print(f"study {study.name!r}: {len(study.trials)} runs ("
          + ", ".join(f"{phase} {n}" for phase, n in sorted(phases.items()))
          + f") exported to {out}")
    study_dir = f"{resolve_storage(args.storage_path).rstrip('/')}/{args.state_name or study.name}"
    if not state_names(study_dir):
        print(f"no saved state in {study_dir} (give --storage-path, or --state-name for a part): "
              "the runs only")
        return 0
    saved = save_state(study_dir, str(out / STATE_FOLDER))
    ended = {**read_ended(study_dir), **ended_trials(study, study_dir)}
    write_ended(str(out / STATE_FOLDER), ended)
    print(f"state of {study_dir} saved in {out / STATE_FOLDER} ({', '.join(saved)}; "
          f"{len(ended)} ended trials): go on in another store with `harness run FILE "
          f"--state-from {out}`")
    return 0


def ended_trials(study, study_dir: str) -> dict[str, dict]:
    """The study's trial runs that ended normally in this store, as `carry.read_ended` gives
    them: status, the per-epoch values of the tuning metric (none for an untuned study), test
    accuracy (None when not logged)."""
    import math

    from harness.study import saved_space
    from harness.study.run_schema import ENDED_NORMALLY

    spec = saved_space.read(study_dir, build=False)
    metric = spec.tuning.metric if spec is not None and spec.tuning is not None else None
    series = study.epochs.sort_values("epoch").groupby("run_id")
    ended = {}
    for row in study.trials[study.trials["status"].isin(ENDED_NORMALLY)].itertuples():
        values = [] if metric is None or row.run_id not in series.groups else \
            [float(v) for v in series.get_group(row.run_id)[metric]]
        accuracy = getattr(row, "test_accuracy", math.nan)
        ended[row.trial_key] = {"status": row.status, "values": values,
                                "test_accuracy": None if math.isnan(accuracy) else float(accuracy)}
    return ended
