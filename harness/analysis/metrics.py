"""What a metric means to the analysis: which direction is better, whether it is a bounded
accuracy, and the score a trial that did not finish counts at.

`DIRECTION` is explicit per metric (+1: higher is better, −1: lower is better); a gain is
    gain = direction(metric) · (langevin − baseline),
so gain > 0 always means "Langevin did better". A metric missing from the table is refused with
one line instead of being guessed from its name.

A diverged or failed trial is an outcome, not a missing value. For an accuracy metric it counts at
chance accuracy, 1 / (number of classes of its dataset), in means, gains and trends (the tables say
how many there were); for any other metric there is no honest stand-in, so such trials are left
out of that metric's statistics and only counted.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from harness.data.catalog import dataset_info
from harness.errors import HarnessError
from harness.study.run_schema import STATUS_DIVERGED, STATUS_FAILED, STATUS_FINISHED, STATUSES

DIRECTION = {
    "test_accuracy": 1,
    "val_accuracy": 1,
    "train_accuracy": 1,
    "best_val_accuracy": 1,
    "test_loss": -1,
    "val_loss": -1,
    "train_loss": -1,
    "epoch_time_s": -1,
    "images_per_s": 1,
}
ACCURACIES = frozenset(m for m in DIRECTION if m.endswith("accuracy"))
# The param a synthetic study logs its class count under (see harness.study.space.flatten).
SYNTHETIC_CLASSES_PARAM = "dataset_options.num_classes"


def direction(metric: str) -> int:
    """+1 when higher `metric` is better, −1 when lower is; a one-line HarnessError otherwise."""
    if metric not in DIRECTION:
        raise HarnessError(
            f"metric {metric!r} has no known direction; known: {', '.join(sorted(DIRECTION))}"
        )
    return DIRECTION[metric]


def is_accuracy(metric: str) -> bool:
    """A share of correct predictions: bounded to [0, 1], failures count at chance."""
    return metric in ACCURACIES


def chance_accuracy(dataset: str, num_classes: object = None) -> float:
    """1 / number of classes: `num_classes` (a synthetic study's option) when given, else the
    catalogue's count for `dataset`."""
    if num_classes is not None and not pd.isna(num_classes):
        return 1.0 / int(num_classes)
    return 1.0 / dataset_info(dataset).num_classes


def chance_of(trials: pd.DataFrame) -> pd.Series:
    """Chance accuracy of each trial's dataset."""
    classes = trials.get(SYNTHETIC_CLASSES_PARAM, pd.Series(np.nan, index=trials.index))
    return pd.Series(
        [chance_accuracy(d, c) for d, c in zip(trials["dataset"], classes, strict=True)],
        index=trials.index,
        dtype=float,
    )


def ended(trials: pd.DataFrame) -> pd.DataFrame:
    """The trials that have an outcome (finished, diverged or failed); a run still going, or
    interrupted and waiting for `harness run --resume`, has none yet and is left out until it
    ends (it is neither a failure nor a seed of a complete look)."""
    return trials[trials["status"].isin(STATUSES)]


def outcome(trials: pd.DataFrame, metric: str) -> pd.Series:
    """Each trial's value of `metric` as an outcome: the logged value when it finished; chance
    accuracy when it diverged or failed (accuracy metrics); NaN otherwise (a run still going)."""
    value = trials[metric].where(trials["status"] == STATUS_FINISHED).astype(float)
    if is_accuracy(metric):
        failed = trials["status"].isin([STATUS_DIVERGED, STATUS_FAILED])
        value = value.mask(failed, chance_of(trials))
    return value
