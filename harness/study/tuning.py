"""The fair-comparison protocol: every arm gets the same tuning budget on validation data, then
its best setting is re-run on fresh seeds.

A study file with a `tuning:` block (schema: `space.TuningSpec`) runs in two phases:

1. **tune**: every arm — one (dataset, model family, depth, optimizer variant) cell, e.g. Adam,
   L-Adam and LL-Adam at depth 30 are three arms — runs exactly `budget` = K trials. Trial i
   of an arm trains the i-th point of a seeded, scrambled quasi-random sequence (Sobol by
   default, or Halton, or plain random) mapped onto the searched ranges, with training seed
   `tuning.seeds[i mod S]`.
   **Twins** (the plain optimizer and its Langevin variants at one depth) get the same points
   and the same seeds: the sequence is drawn once per base optimizer over all its tuned
   dimensions, σ last; the plain arm reads the learning-rate (and other shared) coordinates
   and ignores σ's, so the only difference between twins is the noise. The sequence depends on
   (sampler, seed, base optimizer's ranges) only: every depth searches the same points.
   A value u ∈ [0, 1) of a coordinate maps to `low + u·(high − low)`, or with `log: true` to
   `exp(ln low + u·(ln high − ln low))`, rounded to 4 significant digits (readable params; the
   rounding is part of the point, so twins still share it exactly).
2. **final**: each arm's chosen point is re-run on M fresh seeds (`final_seeds`, disjoint from
   the tuning seeds); these trials carry the test accuracy the verdict is made of.

**Selection** (`choose`): a tuning trial's score is its validation metric at the last epoch
(`score_epoch: last`) or its best over epochs (`best`). Only trials that finished count; a
diverged or failed trial scores NaN and ranks below every finite score. The arm's choice is the
best score by `mode`; ties go to the earliest point in the sequence (lowest index), so the rule
is deterministic. An arm whose K trials all diverged or failed still gets a choice (point 0,
score NaN) so that its finals record the failure. The choice is saved with the study
(`choices.json`) before the final phase starts and never recomputed on resume.
"""

from __future__ import annotations

import json
import math
import warnings
from dataclasses import asdict, dataclass

import numpy as np

from harness.study.run_schema import PHASE_FINAL, PHASE_TUNE
from harness.study.space import TUNE, OptimizerSpec, StudySpec, TuningSpec, trial_config

CHOICES_FILE = "choices.json"
SIGNIFICANT_DIGITS = 4


@dataclass(frozen=True)
class Arm:
    """One compared cell; `name` is stable across runs (MLflow tag `arm`)."""

    name: str
    depth: int
    optimizer: OptimizerSpec
    ranges: dict  # the base optimizer's searched ranges (`TuningSpec.ranges`)

    @property
    def dimensions(self) -> list[str]:
        """The twins' shared coordinates: every searched name of the base, sorted, σ last."""
        names = sorted(n for n in self.ranges if n != "sigma")
        return names + (["sigma"] if "sigma" in self.ranges else [])

    @property
    def tuned(self) -> list[str]:
        """The hyper-parameters drawn for this arm (σ only for a `sigma: tune` arm)."""
        return [n for n in self.dimensions if n != "sigma" or self.optimizer.sigma == TUNE]


def arm_name(spec: StudySpec, depth: int, optimizer: OptimizerSpec) -> str:
    return f"{spec.dataset.name}-{spec.model.family}{depth}-{optimizer.display}"


def arms(spec: StudySpec) -> list[Arm]:
    """Every arm of a tuned study, depth-major in file order."""
    return [Arm(arm_name(spec, depth, opt), depth, opt, spec.tuning.ranges(opt.base))
            for depth in spec.model.depths for opt in spec.optimizers]


def unit_points(tuning: TuningSpec, n_dims: int) -> np.ndarray:
    """K points in [0, 1)^d from the seeded, scrambled sampler (the same for every twin)."""
    from scipy.stats import qmc

    if tuning.sampler == "random":
        return np.random.default_rng(tuning.seed).random((tuning.budget, n_dims))
    engine = {"sobol": qmc.Sobol, "halton": qmc.Halton}[tuning.sampler]
    with warnings.catch_warnings():  # Sobol warns when K is not a power of two: still valid
        warnings.simplefilter("ignore", UserWarning)
        return engine(n_dims, scramble=True, rng=tuning.seed).random(tuning.budget)


def _round(value: float) -> float:
    return float(f"{value:.{SIGNIFICANT_DIGITS}g}")


def to_value(u: float, low: float, high: float, log: bool) -> float:
    """Map u ∈ [0, 1) onto [low, high) (in log space when `log`)."""
    if log:
        return _round(math.exp(math.log(low) + u * (math.log(high) - math.log(low))))
    return _round(low + u * (high - low))


def arm_points(spec: StudySpec, arm: Arm) -> list[dict[str, float]]:
    """The K settings an arm tunes over: {hyper-parameter: value} for its tuned names."""
    names = arm.dimensions
    units = unit_points(spec.tuning, len(names))
    ranges = arm.ranges
    return [{name: to_value(u[names.index(name)], ranges[name].low, ranges[name].high,
                            ranges[name].log) for name in arm.tuned} for u in units]


def _config(spec: StudySpec, arm: Arm, values: dict, seed: int, phase: str, point: int) -> dict:
    opt = arm.optimizer
    hyper = {**opt.hyper, **{k: v for k, v in values.items()
                             if k not in ("learning_rate", "sigma")}}
    return trial_config(
        spec, arm.depth, opt, seed,
        learning_rate=values.get("learning_rate", opt.learning_rate),
        sigma=values.get("sigma", opt.sigma),
        hyper=hyper, phase=phase, arm=arm.name, point=point,
    )


def tune_configs(spec: StudySpec) -> list[dict]:
    """Phase 1: K trials per arm (point i, seed tuning.seeds[i mod S])."""
    seeds = spec.tuning.seeds
    return [_config(spec, arm, values, seeds[i % len(seeds)], PHASE_TUNE, i)
            for arm in arms(spec) for i, values in enumerate(arm_points(spec, arm))]


@dataclass(frozen=True)
class Choice:
    """An arm's chosen tuning point."""

    arm: str
    point: int
    score: float  # NaN: no tuning trial of the arm finished
    values: dict[str, float]
    trial_key: str

    @property
    def trained(self) -> bool:
        return math.isfinite(self.score)


def final_configs(spec: StudySpec, choices: dict[str, Choice]) -> list[dict]:
    """Phase 2: each arm's chosen point on every final seed."""
    return [_config(spec, arm, choices[arm.name].values, seed, PHASE_FINAL,
                    choices[arm.name].point)
            for arm in arms(spec) for seed in spec.tuning.final_seed_list]


def score(history: list[float], tuning: TuningSpec) -> float:
    """A tuning trial's score: the metric at the last epoch, or its best epoch (NaN when none)."""
    finite = [v for v in history if v is not None and math.isfinite(v)]
    if not finite:
        return float("nan")
    if tuning.score_epoch == "last":
        last = history[-1]
        return last if last is not None and math.isfinite(last) else float("nan")
    return max(finite) if tuning.mode == "max" else min(finite)


def choose(spec: StudySpec, outcomes: dict[str, tuple[str, list[float]]]) -> dict[str, Choice]:
    """Each arm's best tuning trial (see the module docstring for the rule).

    `outcomes` maps a tuning trial's key to (status, per-epoch values of `tuning.metric`);
    a trial missing from it counts as failed.
    """
    from harness.study.run_schema import STATUS_FINISHED

    tuning = spec.tuning
    sign = -1.0 if tuning.mode == "max" else 1.0
    configs = tune_configs(spec)
    choices = {}
    for arm in arms(spec):
        ranked = []
        for config in (c for c in configs if c["arm"] == arm.name):
            status, history = outcomes.get(config["trial_key"], ("failed", []))
            value = score(history, tuning) if status == STATUS_FINISHED else float("nan")
            finite = math.isfinite(value)
            ranked.append(((not finite, sign * value if finite else 0.0, config["point"]),
                           value, config))
        _, value, best = min(ranked, key=lambda item: item[0])
        values = {name: best[name] if name in ("learning_rate", "sigma") else best["hyper"][name]
                  for name in arm.tuned}
        choices[arm.name] = Choice(arm.name, best["point"], value, values, best["trial_key"])
    return choices


def choices_to_json(choices: dict[str, Choice]) -> str:
    return json.dumps({name: asdict(c) for name, c in choices.items()}, indent=2, sort_keys=True)


def choices_from_json(text: str) -> dict[str, Choice]:
    return {name: Choice(**fields) for name, fields in json.loads(text).items()}
