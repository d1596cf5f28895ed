"""A search-space file's schedule block, checked without Keras: its name and its fields.

    {"name": "constant"}
    {"name": "log", "epochs": T}
    {"name": "inverse_time", "epochs": T}
    {"name": "piecewise", "epoch": E, "factor": f}
    {"name": "off_after", "epoch": E}

`schedules.from_spec` builds the schedule these fields describe (the formulas are there).
"""

from __future__ import annotations

SCHEDULE_FIELDS = {"constant": (), "log": ("epochs",), "inverse_time": ("epochs",),
                   "piecewise": ("epoch", "factor"), "off_after": ("epoch",)}
SCHEDULE_NAMES = tuple(SCHEDULE_FIELDS)


def check_schedule(spec: dict) -> tuple[str, dict]:
    """(name, {field: number ≥ 0}) of a schedule block, or ValueError naming what is allowed:
    the names, the name's fields, a number ≥ 0."""
    name = spec.get("name")
    if name not in SCHEDULE_FIELDS:
        raise ValueError(f"unknown schedule name {name!r}; allowed: {', '.join(SCHEDULE_NAMES)}")
    allowed = set(SCHEDULE_FIELDS[name])
    unknown = set(spec) - allowed - {"name"}
    if unknown:
        raise ValueError(
            f"schedule {name!r} has unknown field(s) {sorted(unknown)}; allowed: {sorted(allowed)}"
        )
    fields = {}
    for key in SCHEDULE_FIELDS[name]:
        if key not in spec:
            raise ValueError(f"schedule {name!r} needs the field {key!r}")
        value = spec[key]
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise ValueError(
                f"schedule {name!r} field {key!r} must be a number >= 0; got {value!r}")
        fields[key] = value
    return name, fields
