"""Several studies analysed as one: a secondary analysis across studies that ran other depths (or
datasets, models) under the same protocol, e.g. a depth trend from 3 to 50 layers out of a study at
depths 3-30 and one at 40-50.

`pool(studies)` is the `Study` whose trials, epochs and arm runs are the studies' together. It
decides nothing: it carries no declared design (each study's declared tests are replayed by its
own analysis), and its report says which studies it pools. Two studies that both ran one
(dataset, model, depth) group are refused: their arms would pool and their seeds pair across
studies that may differ in what the arm names do not say (epochs, seeds, schedules). Each trial
carries its study's name in the `pooled_study` column (a pooled study's trials keep theirs), which
`pooled_studies` reads back, so the pooled study exported by `harness analyze` and read with
`--from` is the same pooled study.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from harness.analysis.load import Study
from harness.errors import HarnessError

STUDY_COLUMN = "pooled_study"  # not the `study` param: a study run in parts logs several
GROUP = ["dataset", "model", "depth"]
SEPARATOR = "+"


def pool(studies: Sequence[Study]) -> Study:
    """The studies as one Study (see the module docstring); a one-line HarnessError when fewer
    than two are given, when tuned and untuned studies are mixed, or when two share a group."""
    if len(studies) < 2:
        raise HarnessError("pooling takes at least two studies")
    names = [study.name for study in studies]
    if len(set(names)) < len(names):
        raise HarnessError(f"a study is given twice: {', '.join(names)}")
    if len({study.tuned for study in studies}) > 1:
        tuned = [s.name for s in studies if s.tuned]
        raise HarnessError(
            f"tuned studies ({', '.join(tuned)}) and untuned ones cannot be pooled: a tuned "
            "study's finals are analysed apart from its tuning runs"
        )
    owner: dict[tuple, str] = {}
    for study in studies:
        for group in study.trials[GROUP].drop_duplicates().itertuples(index=False):
            key = tuple(group)
            if key in owner:
                raise HarnessError(
                    f"studies {owner[key]!r} and {study.name!r} both ran "
                    f"{'/'.join(map(str, key))} (dataset/model/depth): pooling adds groups, it "
                    "does not merge one group's runs across studies"
                )
            owner[key] = study.name
    trials = [_with_study(study) for study in studies]
    return Study(
        name=SEPARATOR.join(names),
        experiment_id=SEPARATOR.join(study.experiment_id for study in studies),
        tracking_uri=SEPARATOR.join(dict.fromkeys(study.tracking_uri for study in studies)),
        trials=pd.concat(trials, ignore_index=True),
        epochs=pd.concat([study.epochs for study in studies], ignore_index=True),
        metric_names=tuple(dict.fromkeys(m for study in studies for m in study.metric_names)),
        arms=pd.concat([study.arms for study in studies if len(study.arms)], ignore_index=True)
        if any(len(study.arms) for study in studies) else studies[0].arms,
        design=None,
    )


def _with_study(study: Study) -> pd.DataFrame:
    """The study's trials with its name in STUDY_COLUMN (a pooled study's keep theirs)."""
    if len(pooled_studies(study.trials)):
        return study.trials
    return study.trials.assign(**{STUDY_COLUMN: study.name})


def pooled_studies(trials: pd.DataFrame) -> pd.DataFrame:
    """One row per pooled study (study, its groups as "dataset/model/depths", runs), in the order
    the trials list them; empty unless the trials come from more than one study."""
    if STUDY_COLUMN not in trials or trials[STUDY_COLUMN].nunique() < 2:
        return pd.DataFrame(columns=["study", "groups", "runs"])
    rows = []
    for name, runs in trials.groupby(STUDY_COLUMN, sort=False):
        groups = runs.groupby(["dataset", "model"], sort=True)["depth"].agg(
            lambda d: ", ".join(str(x) for x in sorted(set(d))))
        rows.append({"study": name,
                     "groups": "; ".join(f"{ds}/{m} depths {d}" for (ds, m), d in groups.items()),
                     "runs": len(runs)})
    return pd.DataFrame(rows)
