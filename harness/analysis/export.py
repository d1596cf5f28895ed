"""A study as plain files, and back: the raw runs a committed results folder keeps beside its report.

`export_study(study, directory)` writes
- `runs.csv`: `Study.trials`, one row per trial run (params, tags, last metric values, labels);
- `epochs.csv`: `Study.epochs`, one row per (trial, epoch);
- `arms.csv`: `Study.arms`, a tuned study's arm runs (empty file for an untuned study);
- `study.json`: name, experiment_id, tracking_uri (the store the runs came from), metric_names,
  and each CSV's columns with their pandas dtypes;
- `design/`: a study with a declared decision: its design run's files (`spec.json`,
  `choices.json`, `looks.json`), from which the verdict is redone.
`load_exported(directory)` reads them back into a `Study` that `report.analyze` treats exactly like
the one `load.load_study` reads from MLflow: same columns in the same order, same dtypes, same
values (floats are written with Python's shortest round-trip repr and parsed with `float`, so
they come back bit for bit).

A blank cell is a missing value (NaN, or <NA> in an Int64 column such as `point`), except in the
text columns study.json lists under `blank_is_empty_text` (those that held empty text, such as
`shared_config` when no shared hyperparameter differs), where it is the empty string; a text column
that held both empty text and missing values comes back with the empty string for both.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd

from harness.analysis.load import Study
from harness.errors import HarnessError
from harness.study.run_schema import DESIGN_DECLARED, DESIGN_FILES

RUNS, EPOCHS, ARMS, META = "runs.csv", "epochs.csv", "arms.csv", "study.json"
DESIGN = "design"  # folder of the design run's files
FILES = (RUNS, EPOCHS, ARMS, META)
TABLES = {RUNS: "trials", EPOCHS: "epochs", ARMS: "arms"}  # file -> Study field
TEXT_DTYPES = ("str", "object")


def export_study(study: Study, directory: Path) -> Path:
    """Write FILES for `study` into `directory` (created if needed); returns `directory`."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    columns, blank_is_empty = {}, {}
    for file, field in TABLES.items():
        frame = getattr(study, field)
        columns[file] = {str(c): _dtype_name(frame[c], file) for c in frame.columns}
        blank_is_empty[file] = [
            str(c)
            for c in frame.columns
            if columns[file][str(c)] in TEXT_DTYPES and (frame[c] == "").any()
        ]
        frame.to_csv(directory / file, index=False)
    meta = {
        "name": study.name,
        "experiment_id": study.experiment_id,
        "tracking_uri": study.tracking_uri,
        "metric_names": list(study.metric_names),
        "columns": columns,
        "blank_is_empty_text": blank_is_empty,
    }
    (directory / META).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    if study.design is not None:
        (directory / DESIGN).mkdir(exist_ok=True)
        for name, text in study.design.items():
            (directory / DESIGN / name).write_text(text, encoding="utf-8")
    return directory


def _dtype_name(column: pd.Series, file: str) -> str:
    name = str(column.dtype)
    if name not in (*TEXT_DTYPES, "float64", "int64", "Int64", "bool"):
        raise HarnessError(
            f"{file} column {column.name!r} has dtype {name}, which CSV export lacks"
        )
    return name


def load_exported(directory: Path) -> Study:
    """The `Study` that `export_study` wrote into `directory` (a one-line HarnessError naming the
    folder and the files expected when one is missing or does not match study.json)."""
    directory = Path(directory)
    missing = [f for f in FILES if not (directory / f).is_file()]
    if missing:
        raise HarnessError(
            f"{directory} is not an exported study: missing {', '.join(missing)} "
            f"(expected {', '.join(FILES)}, as `harness analyze` writes them)"
        )
    try:
        meta = json.loads((directory / META).read_text(encoding="utf-8"))
        columns, blank_is_empty = meta["columns"], meta["blank_is_empty_text"]
        frames = {
            field: _read_table(directory / file, columns[file], blank_is_empty[file])
            for file, field in TABLES.items()
        }
        design = None
        if (directory / DESIGN).is_dir():
            design = {name: (directory / DESIGN / name).read_text(encoding="utf-8")
                      for name in DESIGN_FILES + (DESIGN_DECLARED,)
                      if name in DESIGN_FILES or (directory / DESIGN / name).is_file()}
        return Study(
            name=meta["name"],
            experiment_id=meta["experiment_id"],
            tracking_uri=meta["tracking_uri"],
            metric_names=tuple(meta["metric_names"]),
            design=design,
            **frames,
        )
    except HarnessError:
        raise
    except (KeyError, TypeError, ValueError) as exc:
        raise HarnessError(
            f"{directory / META} does not describe the CSVs beside it ({type(exc).__name__}: "
            f"{exc}); re-export it with `harness analyze`"
        ) from None


def _read_table(path: Path, dtypes: dict[str, str], blank_is_empty: list[str]) -> pd.DataFrame:
    """The CSV at `path` with the columns and dtypes study.json gives (see the module docstring)."""
    if not dtypes:
        return pd.DataFrame([])  # what the loader builds from no runs
    text = pd.read_csv(path, dtype=str, keep_default_na=False)
    if list(text.columns) != list(dtypes):
        raise HarnessError(
            f"{path} has columns {list(text.columns)}, study.json lists {list(dtypes)}"
        )
    return pd.DataFrame(
        {
            name: _parse(text[name], dtype, blank_is_empty=name in blank_is_empty)
            for name, dtype in dtypes.items()
        },
        index=text.index,
    )


def _parse(cells: pd.Series, dtype: str, blank_is_empty: bool) -> pd.Series:
    """One column's cells (text, "" when blank) as `dtype`."""
    if dtype in TEXT_DTYPES:
        values = [c if c or blank_is_empty else None for c in cells]
    elif dtype == "float64":
        values = [float(c) if c else math.nan for c in cells]
    elif dtype == "Int64":
        values = [int(c) if c else pd.NA for c in cells]
    elif dtype == "int64":
        values = [int(c) for c in cells]
    elif dtype == "bool":
        values = [{"True": True, "False": False}[c] for c in cells]
    else:
        raise ValueError(f"column {cells.name!r} has unknown dtype {dtype!r}")
    return pd.Series(values, index=cells.index, dtype=dtype, name=cells.name)
