"""What a study cost: per phase, its runs, wall time and trial time, from the runs' MLflow start
and end times (milliseconds since the epoch).

For the runs of one phase (`phase`, and `stage` for the screening runs of the tuning phase):
- wall hours = (last end − first start) / 3.6e6: the phase's span on the clock;
- trial hours = Σ over the Tune trials that trained them of (last end − first start) of the
  trial's runs / 3.6e6: a packed trial (tag `pack`) trains its K members as one, so its span
  counts once; an unpacked run is its own trial. Each trial held the resources of the study
  file (`resources`), so trial hours × CPUs (or GPUs) per trial is what the phase used.
A run still open (no end time) ends at the phase's last end; a phase with no start time
(an exported study from before the times were kept) is left out. A study stopped and resumed
later counts the pause in both columns of the phases it split (a resumed run keeps its start).
Studies analysed together (`pool`) get a row per study and phase: a span across two studies
would count the time between them.
"""

from __future__ import annotations

import pandas as pd

from harness.analysis.load import PACK_COLUMN
from harness.analysis.pool import STUDY_COLUMN

COLUMNS = ["phase", "runs", "trials", "first_start_utc", "last_end_utc", "wall_hours",
           "trial_hours"]
MS_PER_HOUR = 3.6e6


def _phase(trials: pd.DataFrame) -> pd.Series:
    """"final", "tune (screen)"...; "STUDY: final" for the trials of several studies pooled."""
    stage = trials["stage"] if "stage" in trials else pd.Series(None, index=trials.index)
    phase = trials["phase"].fillna("").astype(str) + stage.map(
        lambda s: f" ({s})" if isinstance(s, str) and s else "")
    if STUDY_COLUMN in trials and trials[STUDY_COLUMN].nunique() > 1:
        return trials[STUDY_COLUMN].astype(str) + ": " + phase
    return phase


def _utc(ms: float) -> str:
    return pd.Timestamp(ms, unit="ms", tz="UTC").strftime("%Y-%m-%d %H:%M")


def cost_table(trials: pd.DataFrame) -> pd.DataFrame:
    """COLUMNS, one row per phase in order of its first start; empty without start times."""
    if "start_time" not in trials or trials["start_time"].isna().all():
        return pd.DataFrame(columns=COLUMNS)
    frame = trials.dropna(subset=["start_time"]).assign(phase_name=_phase(trials))
    rows = []
    for name, runs in frame.groupby("phase_name", sort=False):
        start = runs["start_time"].astype(float)
        end = runs["end_time"].astype(float).fillna(runs["end_time"].max())
        end = end.fillna(start.max())  # nothing ended yet: the span so far is unknown
        trial = runs[PACK_COLUMN].where(runs[PACK_COLUMN].notna(), runs["run_id"]) \
            if PACK_COLUMN in runs else runs["run_id"]
        spans = pd.DataFrame({"trial": trial, "start": start, "end": end}).groupby("trial").agg(
            start=("start", "min"), end=("end", "max"))
        rows.append({"phase": name, "runs": len(runs), "trials": len(spans),
                     "first_start_utc": _utc(start.min()), "last_end_utc": _utc(end.max()),
                     "wall_hours": (end.max() - start.min()) / MS_PER_HOUR,
                     "trial_hours": float((spans["end"] - spans["start"]).sum()) / MS_PER_HOUR,
                     "_first": start.min()})
    table = pd.DataFrame(rows).sort_values("_first", ignore_index=True)
    return table[COLUMNS]
