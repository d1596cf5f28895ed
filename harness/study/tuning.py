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

**Screening** (`tuning.screen: {top: m, seeds: r}`): a deep net trains on some seeds and sits at
chance on others, so one seed per point picks lucky points. After the K one-seed trials, each
arm's m best points (by the rule above) run on the r − 1 screening seeds (`screen_seed_list`,
fresh, disjoint from the finals); the choice is the kept point with the best **mean** over its r
trials, a diverged or failed trial scoring at chance accuracy (`val_loss`: +inf). Every arm runs
K + m·(r − 1) tuning trials, twins alike.

**Noise only** (`tuning.langevin: noise_only`): the plain arms are tuned (and screened) first;
each Langevin arm then searches σ alone — K points of a one-dimensional sequence — at its plain
twin's chosen setting (learning rate and every other tuned value), with the same budget and
seeds. It answers "does noise help the best plain setting?": the twins differ only in σ.

**Matched-learning-rate controls** (`tuning.matched_lr_controls: true`): where a Langevin arm L
chose other shared values (the learning rate) than its plain twin P, the finals also run P's
optimizer at L's values with σ = 0 (arm `L[sigma=0]`) and L at P's values with L's σ (arm
`L[lr=P]`), on the same final seeds: the 2 × 2 {lr_P, lr_L} × {σ = 0, σ*} that separates the
noise effect from the learning-rate effect.
"""

from __future__ import annotations

import json
import math
import warnings
from dataclasses import asdict, dataclass

import numpy as np

from harness.study.run_schema import BASE_DISPLAY, PHASE_FINAL, PHASE_TUNE
from harness.study.space import (
    NOISE_ONLY,
    TUNE,
    OptimizerSpec,
    StudySpec,
    TuningSpec,
    trial_config,
)

CHOICES_FILE = "choices.json"
SIGNIFICANT_DIGITS = 4
STAGE_SCREEN = "screen"  # config key `stage` of a screening trial (absent on stage-one trials)
CONTROL_SIGMA0 = "sigma0"  # the plain optimizer at the Langevin arm's chosen values
CONTROL_PLAIN_LR = "plain_lr"  # the Langevin arm at its plain twin's chosen values


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


def rounds(spec: StudySpec) -> list[list[Arm]]:
    """The arms tuned together: one round (joint), or the plain arms then the Langevin arms
    (noise only, which needs the plain choices first)."""
    if spec.tuning.langevin != NOISE_ONLY:
        return [arms(spec)]
    return [[a for a in arms(spec) if not a.optimizer.noisy],
            [a for a in arms(spec) if a.optimizer.noisy]]


def twin(spec: StudySpec, arm: Arm) -> Arm | None:
    """The plain arm of the same base optimizer at the same depth (None if the study has none)."""
    return next((a for a in arms(spec) if a.depth == arm.depth and not a.optimizer.noisy
                 and a.optimizer.base == arm.optimizer.base), None)


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


def arm_points(spec: StudySpec, arm: Arm, choices: dict | None = None) -> list[dict[str, float]]:
    """The K settings an arm tunes over: {hyper-parameter: value} for its tuned names (noise
    only: the plain twin's chosen values, σ drawn alone; `choices` must hold that twin)."""
    ranges = arm.ranges
    if spec.tuning.langevin == NOISE_ONLY and arm.optimizer.noisy:
        chosen = choices[twin(spec, arm).name].values
        sigma = ranges["sigma"]
        return [{**chosen, "sigma": to_value(u[0], sigma.low, sigma.high, sigma.log)}
                for u in unit_points(spec.tuning, 1)]
    names = arm.dimensions
    units = unit_points(spec.tuning, len(names))
    return [{name: to_value(u[names.index(name)], ranges[name].low, ranges[name].high,
                            ranges[name].log) for name in arm.tuned} for u in units]


def _config(spec: StudySpec, arm: Arm, values: dict, seed: int, phase: str, point: int,
            opt: OptimizerSpec | None = None, name: str | None = None, **extra) -> dict:
    opt = opt or arm.optimizer
    hyper = {**opt.hyper, **{k: v for k, v in values.items()
                             if k not in ("learning_rate", "sigma")}}
    return trial_config(
        spec, arm.depth, opt, seed,
        learning_rate=values.get("learning_rate", opt.learning_rate),
        sigma=values.get("sigma", opt.sigma),
        hyper=hyper, phase=phase, arm=name or arm.name, point=point, **extra,
    )


def tune_configs(spec: StudySpec, tuned: list[Arm] | None = None,
                 choices: dict | None = None) -> list[dict]:
    """Stage one of tuning: K trials per arm of `tuned` (default: the first round), point i on
    seed tuning.seeds[i mod S]."""
    seeds = spec.tuning.seeds
    return [_config(spec, arm, values, seeds[i % len(seeds)], PHASE_TUNE, i)
            for arm in (rounds(spec)[0] if tuned is None else tuned)
            for i, values in enumerate(arm_points(spec, arm, choices))]


def screen_configs(spec: StudySpec, stage_one: list[dict], outcomes: dict,
                   failed_score: float) -> list[dict]:
    """Stage two: each arm's `tuning.kept` best stage-one points on the screening seeds."""
    seeds = spec.tuning.screen_seed_list
    configs = []
    for arm_configs in _by_arm(stage_one).values():
        for config in _ranked(spec, arm_configs, outcomes, failed_score)[:spec.tuning.kept]:
            configs += [{k: v for k, v in config.items() if k not in ("trial_key", "_score")} | {
                "seed": seed, "stage": STAGE_SCREEN} for seed in seeds]
    from harness.study.space import trial_key

    return [{**c, "trial_key": trial_key(c)} for c in configs]


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


GIVEN_POINT = -1  # the point of a choice given by `tuning.chosen` (no tuning trial made it)


def given_choices(spec: StudySpec) -> dict[str, Choice]:
    """The choices `tuning.chosen` gives, as if tuning had made them (score NaN: not scored
    here)."""
    return {name: Choice(name, GIVEN_POINT, float("nan"), dict(values), "given")
            for name, values in spec.tuning.chosen.items()}


def final_configs(spec: StudySpec, choices: dict[str, Choice],
                  seeds: list[int] | None = None) -> list[dict]:
    """The final phase: each arm's chosen point on every final seed (default: all of
    `final_seed_list`), then the matched-learning-rate controls on the same seeds."""
    seeds = spec.tuning.final_seed_list if seeds is None else seeds
    configs = [_config(spec, arm, choices[arm.name].values, seed, PHASE_FINAL,
                       choices[arm.name].point)
               for arm in arms(spec) for seed in seeds]
    for arm, control, opt, values in controls(spec, choices):
        configs += [_config(spec, arm, values, seed, PHASE_FINAL, choices[arm.name].point,
                            opt=opt, name=control_arm_name(arm, control),
                            control=control, control_of=arm.name) for seed in seeds]
    return configs


def control_arm_name(arm: Arm, control: str) -> str:
    plain = BASE_DISPLAY[arm.optimizer.base]
    return f"{arm.name}[sigma=0]" if control == CONTROL_SIGMA0 else f"{arm.name}[lr={plain}]"


def unmatched_twins(spec: StudySpec, values: dict[str, dict]):
    """(Langevin arm, its plain twin, the arm's values less σ) for each twin pair whose values
    (arm name -> hyper-parameter values) differ in more than σ."""
    for arm in arms(spec):
        plain = twin(spec, arm) if arm.optimizer.noisy else None
        if plain is None:
            continue
        mine = {k: v for k, v in values[arm.name].items() if k != "sigma"}
        if mine != values[plain.name]:
            yield arm, plain, mine


def controls(spec: StudySpec, choices: dict[str, Choice]):
    """(Langevin arm, control kind, optimizer, values) of every matched-learning-rate control:
    none unless `tuning.matched_lr_controls`, none for twins that chose the same shared values."""
    if not spec.tuning.matched_lr_controls:
        return []
    found = []
    for arm, plain, mine in unmatched_twins(spec, {k: c.values for k, c in choices.items()}):
        found.append((arm, CONTROL_SIGMA0, plain.optimizer, mine))
        found.append((arm, CONTROL_PLAIN_LR, arm.optimizer,
                      {**choices[plain.name].values,
                       "sigma": choices[arm.name].values.get("sigma", arm.optimizer.sigma)}))
    return found


def score(history: list[float], tuning: TuningSpec) -> float:
    """A tuning trial's score: the metric at the last epoch, or its best epoch (NaN when none)."""
    finite = [v for v in history if v is not None and math.isfinite(v)]
    if not finite:
        return float("nan")
    if tuning.score_epoch == "last":
        last = history[-1]
        return last if last is not None and math.isfinite(last) else float("nan")
    return max(finite) if tuning.mode == "max" else min(finite)


def failed_score(spec: StudySpec) -> float:
    """What a diverged or failed screening trial scores: chance accuracy, or +inf loss."""
    from harness.data.catalog import dataset_info

    if spec.tuning.metric == "val_loss":
        return math.inf
    return 1.0 / dataset_info(spec.dataset.name, **spec.dataset.options).num_classes


def _by_arm(configs: list[dict]) -> dict[str, list[dict]]:
    grouped: dict[str, list[dict]] = {}
    for config in configs:
        grouped.setdefault(config["arm"], []).append(config)
    return grouped


def _trial_score(spec: StudySpec, config: dict, outcomes: dict) -> float:
    from harness.study.run_schema import STATUS_FINISHED

    status, history = outcomes.get(config["trial_key"], ("failed", []))
    return score(history, spec.tuning) if status == STATUS_FINISHED else float("nan")


def _ranked(spec: StudySpec, configs: list[dict], outcomes: dict, failed: float,
            screened: list[dict] = ()) -> list[dict]:
    """One arm's stage-one configs, best first. Without `screened` trials: by the stage-one
    score (NaN last); with them: the kept points only, by the mean over each point's trials
    (a NaN trial scores `failed`). Ties go to the earliest point."""
    sign = -1.0 if spec.tuning.mode == "max" else 1.0
    by_point: dict[int, list[dict]] = {}
    for config in screened:
        by_point.setdefault(config["point"], []).append(config)
    ranked = []
    for config in configs:
        if screened and config["point"] not in by_point:
            continue
        trials = [config, *by_point.get(config["point"], [])]
        values = [_trial_score(spec, c, outcomes) for c in trials]
        if screened:
            values = [v if math.isfinite(v) else failed for v in values]
        value = float(np.mean(values))
        finite = math.isfinite(value)
        ranked.append(((not finite, sign * value if finite else 0.0, config["point"]),
                       value, config))
    ranked.sort(key=lambda item: item[0])
    return [{**config, "_score": value} for _, value, config in ranked]


def choose(spec: StudySpec, outcomes: dict[str, tuple[str, list[float]]],
           stage_one: list[dict] | None = None, screened: list[dict] = ()) -> dict[str, Choice]:
    """Each arm's best tuning point among `stage_one` (default: `tune_configs(spec)`), by the
    rule of the module docstring; `screened` are the screening trials of the kept points.

    `outcomes` maps a tuning trial's key to (status, per-epoch values of `tuning.metric`);
    a trial missing from it counts as failed.
    """
    stage_one = tune_configs(spec) if stage_one is None else stage_one
    failed = failed_score(spec) if screened else float("nan")
    by_name = {arm.name: arm for arm in arms(spec)}
    screened_by_arm = _by_arm(list(screened))
    choices = {}
    for name, configs in _by_arm(stage_one).items():
        best = _ranked(spec, configs, outcomes, failed, screened_by_arm.get(name, []))[0]
        values = {key: best[key] if key in ("learning_rate", "sigma") else best["hyper"][key]
                  for key in _chosen_names(spec, by_name[name])}
        choices[name] = Choice(name, best["point"], best["_score"], values, best["trial_key"])
    return choices


def trained_lines(spec: StudySpec, stage_one: list[dict], screened: list[dict],
                  outcomes: dict, choices: dict[str, Choice], threshold: float) -> list[str]:
    """Per arm, how often its tuning trials trained — finished with a last-epoch `tuning.metric`
    above `threshold` (an accuracy metric only; [] otherwise): of its stage-one points, and of
    the chosen point's trials (its stage-one seed and screening seeds). What a declared test is
    chosen from when it is declared after tuning (where do plain runs fail?)."""
    from harness.study.run_schema import STATUS_FINISHED

    if "accuracy" not in spec.tuning.metric or spec.tuning.mode != "max":
        return []

    def trained(config: dict) -> bool:
        status, history = outcomes.get(config["trial_key"], ("failed", []))
        last = history[-1] if history else None
        return status == STATUS_FINISHED and last is not None and last > threshold

    screened_by_arm = _by_arm(list(screened))
    lines = []
    for name, configs in _by_arm(stage_one).items():
        point = choices[name].point
        chosen = [c for c in configs + screened_by_arm.get(name, []) if c["point"] == point]
        lines.append(f"  {name}: {sum(map(trained, configs))} of {len(configs)} tuning points "
                     f"trained; the chosen point {point} on {sum(map(trained, chosen))} of "
                     f"{len(chosen)} seeds")
    return lines


def _chosen_names(spec: StudySpec, arm: Arm) -> list[str]:
    """What a choice records: the tuned names (noise only: the twin's and σ)."""
    if spec.tuning.langevin == NOISE_ONLY and arm.optimizer.noisy:
        return [n for n in arm.dimensions if n != "sigma"] + ["sigma"]
    return arm.tuned


def choices_to_json(choices: dict[str, Choice]) -> str:
    return json.dumps({name: asdict(c) for name, c in choices.items()}, indent=2, sort_keys=True)


def choices_from_json(text: str) -> dict[str, Choice]:
    return {name: Choice(**fields) for name, fields in json.loads(text).items()}
