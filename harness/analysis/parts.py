"""One study run in several stores, joined: the exports of its parts read back as the study.

A study carried to a new store (`harness run FILE --state-from DIR`, `harness.study.carry`) logs
its later phases there; each store's `harness export` holds the runs it logged. `join(parts)`,
the parts in the order they ran, is the `Study` with every part's trial runs and epochs. A trial
(its `trial_key`) logged by two parts, as the trials of a phase that was running when a store was
left and ran again in the next, keeps the later part's run: the phase's saved outcomes, and so
every choice and look made after it, are that run's. The arm runs and the design files (choices,
looks, a declared decision) come from the last part that has them, which carried the state of
every earlier one. Its declared tests are replayed as for one store.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from harness.analysis.load import Study
from harness.errors import HarnessError

SEPARATOR = "+"


def join(parts: Sequence[Study]) -> tuple[Study, int]:
    """(the study of `parts`, how many trial runs an earlier part logged that a later part ran
    again and replaced); a one-line HarnessError when the parts are not one study."""
    names = sorted({part.name for part in parts})
    if len(names) != 1:
        raise HarnessError(f"parts of one study must share its name; got {', '.join(names)}")
    trials = pd.concat([part.trials for part in parts], ignore_index=True)
    kept = trials.drop_duplicates("trial_key", keep="last")
    epochs = pd.concat([part.epochs for part in parts], ignore_index=True)
    arms = next((part.arms for part in reversed(parts) if len(part.arms)), parts[-1].arms)
    return Study(
        name=names[0],
        experiment_id=SEPARATOR.join(dict.fromkeys(part.experiment_id for part in parts)),
        tracking_uri=SEPARATOR.join(dict.fromkeys(part.tracking_uri for part in parts)),
        trials=kept.reset_index(drop=True),
        epochs=epochs[epochs["run_id"].isin(kept["run_id"])].reset_index(drop=True),
        metric_names=tuple(dict.fromkeys(m for part in parts for m in part.metric_names)),
        arms=arms,
        design=next((part.design for part in reversed(parts) if part.design is not None), None),
    ), len(trials) - len(kept)
