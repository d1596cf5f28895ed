"""Each arm's chosen configuration in a tuned study, and whether it sits at the edge of its range.

The arm runs carry `chosen.<hyper>` tags and the searched ranges `range.<hyper>.low/.high/.log`.
For a chosen value x in [low, high] its position in the range is
    p = (x − low) / (high − low),   or (log x − log low) / (log high − log low) when log,
and it is at the edge when p < EDGE or p > 1 − EDGE (the outer 5 % of the range, on the scale
the sampler drew on): the best setting may lie outside the range, which should be widened.
"""

from __future__ import annotations

import math

import pandas as pd

from harness.study.run_schema import CHOSEN_PREFIX, RANGE_PREFIX

EDGE = 0.05
RULE = f"a chosen value is at the edge when it lies in the outer {EDGE:.0%} of its range (log scale where searched on one)"
CHOICE_COLUMNS = [
    "arm_id", "hyper", "chosen", "low", "high", "log", "position", "at_edge",
    "chosen_point", "chosen_score",
]  # fmt: skip


def position(value: float, low: float, high: float, log: bool) -> float:
    """Where `value` lies in [low, high], 0 at low and 1 at high (on the log scale when `log`)."""
    if log:
        value, low, high = math.log(value), math.log(low), math.log(high)
    return (value - low) / (high - low) if high > low else 0.5


def _flag(text) -> bool:
    return str(text).strip().lower() in ("true", "1", "yes")


def chosen_configs(arms: pd.DataFrame) -> pd.DataFrame:
    """One row per (arm, tuned hyper) with a chosen value: CHOICE_COLUMNS."""
    rows = []
    for _, arm in arms.iterrows():
        for column in [c for c in arms.columns if c.startswith(CHOSEN_PREFIX)]:
            hyper = column[len(CHOSEN_PREFIX) :]
            low_key = f"{RANGE_PREFIX}{hyper}.low"
            if pd.isna(arm[column]) or pd.isna(arm.get(low_key)):
                continue  # chosen.point, chosen.score, or a hyper that was not searched
            value, low = float(arm[column]), float(arm[low_key])
            high, log = (
                float(arm[f"{RANGE_PREFIX}{hyper}.high"]),
                _flag(arm[f"{RANGE_PREFIX}{hyper}.log"]),
            )
            where = position(value, low, high, log)
            rows.append(
                {
                    "arm_id": arm["arm_id"],
                    "hyper": hyper,
                    "chosen": value,
                    "low": low,
                    "high": high,
                    "log": log,
                    "position": where,
                    "at_edge": where < EDGE or where > 1 - EDGE,
                    "chosen_point": arm.get(f"{CHOSEN_PREFIX}point"),
                    "chosen_score": pd.to_numeric(
                        arm.get(f"{CHOSEN_PREFIX}score"), errors="coerce"
                    ),
                }
            )
    return pd.DataFrame(rows, columns=CHOICE_COLUMNS).sort_values(
        ["arm_id", "hyper"], ignore_index=True
    )


def edge_warnings(choices: pd.DataFrame) -> list[str]:
    """One sentence per chosen value at the edge of its range."""
    return [
        f"{row.arm_id}: chosen {row.hyper} = {row.chosen:g} is at the "
        f"{'low' if row.position < 0.5 else 'high'} edge of its range [{row.low:g}, {row.high:g}]"
        f"{' (log)' if row.log else ''}: widen the range"
        for row in choices[choices["at_edge"]].itertuples()
    ]
