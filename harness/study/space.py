"""Search-space files: a study (dataset × model depths × optimizers × seeds) as YAML users can diff.

`load_space(path)` validates a file into a `StudySpec` (pydantic, unknown keys refused) and checks
what the schema alone cannot (optimizer hyper-parameters, schedules); every problem is one
`HarnessError` line naming the file, the field and the allowed values. `trial_configs(spec)`
expands the grid into the flat per-trial config dicts that Ray Tune runs and MLflow records.

Example (see `search_spaces/` for the paper's studies):

    name: dense_depth_mnist
    dataset: {name: mnist, batch_size: 512}
    model: {family: dense, depths: [3, 20, 30, 40]}
    optimizers:
      - {base: adam, learning_rate: 5.0e-3}
      - {base: adam, learning_rate: 5.0e-3, sigma: 1.0e-3}
    seeds: 3
    epochs: 20

A tuned study (the fair-comparison protocol, `harness.study.tuning`) adds a `tuning:` block; its
optimizers leave the tuned hyper-parameters out and mark a Langevin arm with `sigma: tune`:

    optimizers:
      - {base: adam}
      - {base: adam, sigma: tune}
    tuning:
      budget: 8                       # tuning trials per arm, every arm exactly this many
      space:
        learning_rate: {low: 1.0e-4, high: 1.0e-1, log: true}
        sigma: {low: 1.0e-5, high: 1.0e-2, log: true}   # Langevin arms only
      space_by_base:                  # optional: other ranges for one base optimizer
        adadelta: {learning_rate: {low: 0.05, high: 5.0, log: true}}
      sampler: sobol                  # sobol (default), halton, random; scrambled, seeded
      seed: 0                         # the sampler's seed
      seeds: [0]                      # training seed(s) of the tuning trials
      final_seeds: 10                 # M fresh seeds (a count) or a list disjoint from seeds
      metric: val_accuracy            # val_accuracy or val_loss
      mode: max
      score_epoch: last               # last or best epoch counts

`packing: K` (or `auto`) trains up to K compatible trials as one packed model (dense, conv + dense
and highway nets, one device each; `harness.study.packs`): the same trials and MLflow runs,
fewer, larger steps.
"""

from __future__ import annotations

import difflib
import hashlib
import itertools
import json
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from harness.data.catalog import DATASETS
from harness.design.declared import DecisionSpec
from harness.errors import HarnessError
from harness.models import MODEL_FAMILIES
from harness.optimizers.schedule_spec import check_schedule
from harness.study.limits import check_document, check_spec, check_unique_keys
from harness.study.run_schema import BASE_DISPLAY, display_name, variant_of

BASES = tuple(BASE_DISPLAY)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DatasetSpec(_Strict):
    name: Literal[DATASETS]  # type: ignore[valid-type]
    batch_size: int = Field(512, ge=1, description="per replica; global = this × replicas")
    validation_size: int | None = Field(None, ge=0, description="carved from train by the seed")
    limit: int | None = Field(None, ge=1, description="use only the first N source examples")
    augment: bool | None = Field(None, description="None: the dataset's default")
    standardize: bool = False
    data_dir: str | None = Field(None, description="tfds data dir; None: tfds' default")
    options: dict[str, Any] = Field(default_factory=dict, description="synthetic dataset options")


class ModelSpec(_Strict):
    family: Literal[MODEL_FAMILIES]  # type: ignore[valid-type]
    depths: list[int] = Field(min_length=1)
    options: dict[str, Any] = Field(default_factory=dict)

    @field_validator("depths")
    @classmethod
    def _positive(cls, depths):
        if any(d < 1 for d in depths):
            raise ValueError("every depth must be >= 1")
        return depths


TUNE = "tune"  # `sigma: tune`: a Langevin arm whose σ the tuning protocol draws


class OptimizerSpec(_Strict):
    base: Literal[BASES]  # type: ignore[valid-type]
    learning_rate: float | None = Field(None, gt=0, description="required unless tuned")
    lr_schedule: dict[str, Any] | None = None
    sigma: float | Literal[TUNE] = Field(  # type: ignore[valid-type]
        0.0, description="0: the plain (non-Langevin) optimizer; 'tune': drawn by tuning.space")
    sigma_schedule: dict[str, Any] | None = None
    layer_fraction: float = Field(1.0, ge=0, le=1, description="1: full Langevin")
    hyper: dict[str, float] = Field(default_factory=dict, description="beta_1, epsilon, rho, ...")
    name: str | None = Field(None, description="display name; default Adam / L-Adam / LL-Adam")

    @field_validator("sigma")
    @classmethod
    def _sigma(cls, sigma):
        if sigma != TUNE and sigma < 0:
            raise ValueError("sigma must be >= 0 or 'tune'")
        return sigma

    @property
    def noisy(self) -> bool:
        """A Langevin arm (σ tuned or > 0, on at least one layer)."""
        return self.layer_fraction > 0 and (self.sigma == TUNE or self.sigma > 0)

    @property
    def variant(self) -> str:
        """baseline, langevin or layer-langevin (`run_schema.VARIANTS`)."""
        return variant_of(1.0 if self.noisy else 0.0, self.layer_fraction)

    @property
    def display(self) -> str:
        sigma = 1.0 if self.sigma == TUNE else self.sigma
        return self.name or display_name(self.base, sigma, self.layer_fraction)


class Range(_Strict):
    """A searched interval; `log: true` draws uniformly in log space (needs low > 0)."""

    low: float
    high: float
    log: bool = False

    @model_validator(mode="after")
    def _ordered(self):
        if not self.low < self.high:
            raise ValueError(f"low ({self.low:g}) must be below high ({self.high:g})")
        if self.log and self.low <= 0:
            raise ValueError(f"log: true needs low > 0 (got {self.low:g})")
        return self


def _seed_list(seeds):
    seeds = list(range(seeds)) if isinstance(seeds, int) else seeds
    if not seeds or any(s < 0 for s in seeds) or len(set(seeds)) != len(seeds):
        raise ValueError("seeds must be N >= 1 or a non-empty list of distinct integers >= 0")
    return seeds


SAMPLERS = ("sobol", "halton", "random")
TUNING_METRICS = {"val_accuracy": "max", "val_loss": "min"}
JOINT, NOISE_ONLY = "joint", "noise_only"  # how a Langevin arm is tuned (`tuning.langevin`)


class ScreenSpec(_Strict):
    """Two-stage screening: every point on one seed, then each arm's `top` best points on
    `seeds` seeds in all (the `seeds − 1` screening seeds added); the choice is the best mean."""

    top: int | Literal["all"] = Field(description="points per arm kept for the second stage")
    seeds: int = Field(ge=2, description="seeds each kept point is scored on, its first included")

    @field_validator("top")
    @classmethod
    def _top(cls, top):
        if top != "all" and (isinstance(top, bool) or top < 1):
            raise ValueError("top must be an integer >= 1 or 'all'")
        return top


class TuningSpec(_Strict):
    """The fair-comparison protocol's settings (see `harness.study.tuning`)."""

    budget: int = Field(ge=1, description="tuning trials per arm")
    space: dict[str, Range] = Field(min_length=1, description="hyper-parameter -> range")
    space_by_base: dict[Literal[BASES], dict[str, Range]] = Field(  # type: ignore[valid-type]
        default_factory=dict, description="ranges for one base optimizer, over `space`")
    sampler: Literal[SAMPLERS] = "sobol"  # type: ignore[valid-type]
    seed: int = Field(0, ge=0, description="the sampler's seed")
    seeds: list[int] | int = Field([0], description="training seeds of the tuning trials",
                                   validate_default=True)
    final_seeds: list[int] | int = Field(10, description="M fresh seeds, or a list")
    metric: Literal[tuple(TUNING_METRICS)] = "val_accuracy"  # type: ignore[valid-type]
    mode: Literal["max", "min"] = "max"
    score_epoch: Literal["last", "best"] = "last"
    langevin: Literal[JOINT, NOISE_ONLY] = Field(  # type: ignore[valid-type]
        JOINT, description="joint: a Langevin arm draws learning rate and sigma with its twin's "
        "draws; noise_only: it searches sigma alone at its plain twin's chosen learning rate")
    screen: ScreenSpec | None = Field(None, description="two-stage screening; None: one seed "
                                      "per point")
    matched_lr_controls: bool = Field(False, description="finals also run each twin at the "
                                      "other's chosen learning rate (the 2 x 2 lr x sigma)")
    chosen: dict[str, dict[str, float]] | None = Field(
        None, description="each arm's setting given (arm name -> tuned name -> value): no "
        "tuning trial runs, the finals start at once; the block's ranges describe the search "
        "that chose them")
    chosen_from: str | None = Field(None, description="where the given choices come from (a "
                                    "study and its choices file); required with chosen")

    @field_validator("seeds")
    @classmethod
    def _seeds(cls, seeds):
        if isinstance(seeds, int) and not isinstance(seeds, bool):
            seeds = [seeds]  # one tuning seed given as a number is that seed, not a count
        return _seed_list(seeds)

    @field_validator("final_seeds")
    @classmethod
    def _final_seeds(cls, seeds):
        if isinstance(seeds, int):
            if seeds < 1:
                raise ValueError("final_seeds must be a count >= 1 or a list of seeds")
            return seeds
        return _seed_list(seeds)

    @property
    def screen_seed_list(self) -> list[int]:
        """The screening seeds a kept point adds: the first `screen.seeds − 1` integers >= 0 not
        used for tuning (none without a screen)."""
        if self.screen is None:
            return []
        fresh = (s for s in itertools.count() if s not in self.seeds)
        return list(itertools.islice(fresh, self.screen.seeds - 1))

    @property
    def final_seed_list(self) -> list[int]:
        """The final seeds: the list given, or the first M integers >= 0 used neither for
        tuning nor for screening."""
        if isinstance(self.final_seeds, list):
            return self.final_seeds
        used = set(self.seeds) | set(self.screen_seed_list)
        fresh = (s for s in itertools.count() if s not in used)
        return list(itertools.islice(fresh, self.final_seeds))

    @property
    def kept(self) -> int:
        """Points per arm kept for the screen's second stage (0 without a screen)."""
        if self.screen is None:
            return 0
        return self.budget if self.screen.top == "all" else min(self.screen.top, self.budget)

    @property
    def trials_per_arm(self) -> int:
        """An arm's tuning trials: K points, plus each kept point on the screening seeds (none
        when the choices are given)."""
        if self.chosen is not None:
            return 0
        return self.budget + self.kept * len(self.screen_seed_list)

    def ranges(self, base: str) -> dict[str, Range]:
        """The ranges searched for one base optimizer (`space` overridden by `space_by_base`)."""
        return {**self.space, **self.space_by_base.get(base, {})}


class Resources(_Strict):
    cpu: float = Field(1, gt=0)
    gpu: float = Field(0, ge=0, description="whole GPUs, or a share of one (0.25: four trials "
                       "per GPU, each capped to its share of the memory; see study.devices)")

    @field_validator("gpu")
    @classmethod
    def _share_or_whole(cls, gpu):
        if gpu > 1 and gpu != int(gpu):
            raise ValueError("a trial takes whole GPUs or a share of one; allowed: 0 < gpu < 1 "
                             "or an integer")
        return gpu


class StudySpec(_Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    description: str = ""
    dataset: DatasetSpec
    model: ModelSpec
    optimizers: list[OptimizerSpec] = Field(min_length=1)
    seeds: list[int] | int = Field(3, description="a list of seeds, or N for seeds 0..N-1",
                                   validate_default=True)
    epochs: int = Field(ge=1)
    resources: Resources = Resources()
    mixed_precision: bool = False
    jit_compile: bool | Literal["auto"] = "auto"
    max_concurrent_trials: int | None = Field(None, ge=1)
    max_failures: int = Field(2, ge=0, description="retries of a trial that crashed")
    experiment: str | None = Field(None, description="MLflow experiment; default: name")
    storage_path: str | None = Field(None, description="Ray results; default ./results")

    tuning: TuningSpec | None = Field(None, description="fair-comparison protocol; None: grid")
    decision: DecisionSpec | None = Field(None, description="the declared primary tests, their "
                                          "family, alpha, effect and looks (harness.design)")
    packing: int | Literal["auto"] | None = Field(
        None, description="train up to K compatible trials as one packed model; auto: K from "
        "the model size and the device memory; None: one model per trial")

    @field_validator("packing", mode="before")
    @classmethod
    def _packing(cls, packing):
        if packing is None or packing == "auto" or (
                isinstance(packing, int) and not isinstance(packing, bool) and packing >= 1):
            return packing
        raise ValueError(f"got {packing!r}; allowed: an integer >= 1, or auto")

    @field_validator("seeds")
    @classmethod
    def _seeds(cls, seeds):
        return _seed_list(seeds)

    @property
    def experiment_name(self) -> str:
        return self.experiment or self.name


def _owner(model: type[BaseModel], loc: tuple) -> type[BaseModel]:
    """The schema class that holds the field at `loc` (its last part)."""
    owner = model
    for part in loc[:-1]:
        field = owner.model_fields.get(str(part)) if isinstance(part, str) else None
        annotation = getattr(field, "annotation", None)
        args = getattr(annotation, "__args__", ()) or (annotation,)
        owner = next((a for a in args if isinstance(a, type) and issubclass(a, BaseModel)), owner)
    return owner


def _field_error(path: Path, errors: list[dict], model: type[BaseModel]) -> str:
    """One line for the first validation error; an unknown field that is close to a field the
    same block is missing (or allows) is named as the likely typo."""
    error = errors[0]
    loc = ".".join(str(p) for p in error["loc"])
    unknown = [e for e in errors if e["type"] == "extra_forbidden"]
    missing = [e for e in errors if e["type"] == "missing"]
    for typo in unknown:
        parent = typo["loc"][:-1]
        wanted = [str(e["loc"][-1]) for e in missing if e["loc"][:-1] == parent]
        close = difflib.get_close_matches(str(typo["loc"][-1]), wanted, n=1)
        if close:
            name = ".".join(str(p) for p in typo["loc"])
            return f"{path}: '{name}' is not a field; did you mean '{close[0]}'?"
    if error["type"] == "extra_forbidden":
        allowed = list(_owner(model, error["loc"]).model_fields)
        close = difflib.get_close_matches(str(error["loc"][-1]), allowed, n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        return f"{path}: unknown field '{loc}'{hint}; allowed here: {', '.join(allowed)}"
    if error["type"] == "missing":
        return f"{path}: missing required field '{loc}'"
    return f"{path}: field '{loc}': {error['msg']}"


def parse_space(data: Any, path: Path, build: bool = True) -> StudySpec:
    """Validate an already-parsed YAML document; `path` only names the file in errors. With
    `build`, also construct every optimizer and network once (Keras: seconds of TensorFlow
    start-up); without, every check that needs no TensorFlow (a dry run)."""
    if not isinstance(data, dict):
        raise HarnessError(f"{path}: a search space is a YAML mapping with fields {', '.join(StudySpec.model_fields)}")
    check_document(data, path)
    try:
        spec = StudySpec.model_validate(data)
    except ValidationError as exc:
        raise HarnessError(_field_error(path, exc.errors(), StudySpec)) from None
    if spec.decision is not None:
        spec = _with_looks(spec, path)
    check_spec(spec, path)  # sizes, names, duplicates: before anything is built
    if spec.tuning is not None:
        _check_tuning(spec, path)
    if spec.decision is not None:
        _check_decision(spec, path)
    _check_optimizers(spec, path, build)
    if build:
        _check_models(spec, path)
    _check_packing(spec, path)
    return spec


def depth_part(spec: StudySpec, depths: list[int], path: Path, build: bool = True) -> StudySpec:
    """The study cut to some of its depths, to run as a part of its own: named NAME-dD1-D2…,
    recorded in the whole study's MLflow experiment (so `harness analyze NAME` reads every
    part). A depth the study does not have is a one-line HarnessError."""
    if spec.decision is not None:
        raise HarnessError(f"{path}: --depths: a study with a declared decision runs whole (its "
                           "family and looks span every depth); allowed: no --depths, or one "
                           "study file per part, each with its own decision block")
    unknown = sorted(set(depths) - set(spec.model.depths))
    if not depths or unknown:
        raise HarnessError(f"{path}: --depths {unknown or depths}: not in the study's "
                           f"model.depths; allowed: some of {spec.model.depths}")
    data = spec.model_dump(mode="json", exclude_unset=True)
    data["model"]["depths"] = [d for d in spec.model.depths if d in depths]
    data["name"] = f"{spec.name}-d" + "-".join(str(d) for d in data["model"]["depths"])
    data["experiment"] = spec.experiment_name
    return parse_space(data, path, build)


def load_space(path: str | Path, build: bool = True) -> StudySpec:
    """Read and validate a search-space file (one-line `HarnessError` on any problem); `build`
    as in `parse_space`."""
    path = Path(path)
    if not path.is_file():
        raise HarnessError(f"{path}: no such search-space file")
    text = path.read_text()
    check_unique_keys(text, path)
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise HarnessError(f"{path}: not valid YAML{where}: {problem}") from None
    return parse_space(data, path, build)


_NOT_HYPER = ("self", "learning_rate", "sigma", "seed", "name")


def hyper_names(base: str) -> list[str]:
    """The optimizer's own hyper-parameters (beta_1, epsilon, rho, ...), by its signature."""
    from harness.signatures import optimizer_parameters

    parameters = optimizer_parameters(base).parameters.items()
    return [name for name, p in parameters
            if p.kind is p.POSITIONAL_OR_KEYWORD and name not in _NOT_HYPER]


def _check_tuning(spec: StudySpec, path: Path) -> None:
    """What the tuning block's schema cannot see alone: seeds, metric/mode, names, arms."""
    tuning = spec.tuning
    if "seeds" in spec.model_fields_set:
        raise HarnessError(f"{path}: field 'seeds': not used in a tuned study; give "
                           "tuning.seeds (tuning) and tuning.final_seeds (fresh seeds)")
    overlap = sorted(set(tuning.final_seed_list) & set(tuning.seeds + tuning.screen_seed_list))
    if overlap:
        raise HarnessError(f"{path}: field 'tuning.final_seeds': {overlap} also in tuning.seeds "
                           f"or the screening seeds {tuning.screen_seed_list}; allowed: seeds "
                           "disjoint from the tuning and screening seeds")
    if tuning.langevin == NOISE_ONLY:
        for i, opt in enumerate(spec.optimizers):
            if opt.noisy and opt.sigma != TUNE:
                raise HarnessError(f"{path}: field 'optimizers.{i}.sigma': {opt.sigma:g} with "
                                   "tuning.langevin noise_only, which searches sigma alone; "
                                   "allowed: tune")
        if tuning.matched_lr_controls:
            raise HarnessError(f"{path}: field 'tuning.matched_lr_controls': noise_only twins "
                               "share the learning rate, nothing to control; allowed: false (or "
                               "tuning.langevin: joint)")
        plain = {opt.base for opt in spec.optimizers if not opt.noisy}
        for i, opt in enumerate(spec.optimizers):
            if opt.noisy and opt.base not in plain:
                raise HarnessError(f"{path}: field 'optimizers.{i}': noise_only tunes sigma at "
                                   f"the plain twin's learning rate, and no plain {opt.base} "
                                   f"arm is listed; allowed: add {{base: {opt.base}}}")
    if tuning.chosen is not None:
        _check_chosen(spec, path)
    if tuning.mode != TUNING_METRICS[tuning.metric]:
        raise HarnessError(f"{path}: field 'tuning.mode': '{tuning.mode}' with metric "
                           f"{tuning.metric} picks the worst config; allowed: "
                           f"{TUNING_METRICS[tuning.metric]}")
    for base in {opt.base for opt in spec.optimizers} | set(tuning.space_by_base):
        allowed = ["learning_rate", "sigma", *hyper_names(base)]
        for field, ranges in (("space", tuning.space),
                              (f"space_by_base.{base}", tuning.space_by_base.get(base, {}))):
            unknown = sorted(set(ranges) - set(allowed))
            if unknown:
                raise HarnessError(f"{path}: field 'tuning.{field}': unknown hyper-parameter(s) "
                                   f"{unknown} for {base}; allowed: {', '.join(allowed)}")
    for i, opt in enumerate(spec.optimizers):
        where = f"{path}: field 'optimizers.{i}"
        ranges = tuning.ranges(opt.base)
        if "learning_rate" in ranges and opt.learning_rate is not None:
            raise HarnessError(f"{where}.learning_rate': tuned by tuning.space; remove it (twins "
                               "share the learning-rate draws)")
        if opt.sigma == TUNE and "sigma" not in ranges:
            raise HarnessError(f"{where}.sigma': 'tune' needs a sigma range in tuning.space")
        both = sorted(set(opt.hyper) & set(ranges))
        if both:
            raise HarnessError(f"{where}.hyper': {both} also tuned by tuning.space; give each "
                               "hyper-parameter either a value or a range")


def _check_chosen(spec: StudySpec, path: Path) -> None:
    """Given choices name every arm once, each with exactly its tuned hyper-parameters, and say
    where they come from; nothing is screened."""
    from harness.study.tuning import arms

    tuning = spec.tuning
    where = f"{path}: field 'tuning.chosen"
    if not tuning.chosen_from:
        raise HarnessError(f"{path}: field 'tuning.chosen_from': required with tuning.chosen "
                           "(the study and choices file the settings come from)")
    if tuning.screen is not None:
        raise HarnessError(f"{path}: field 'tuning.screen': nothing is tuned when tuning.chosen "
                           "gives every arm's setting; allowed: leave it out")
    tuned = {arm.name: arm.tuned for arm in arms(spec)}
    missing, unknown = sorted(set(tuned) - set(tuning.chosen)), sorted(set(tuning.chosen) -
                                                                         set(tuned))
    if missing or unknown:
        raise HarnessError(f"{where}': " + (f"no setting for {missing}" if missing else
                                             f"unknown arm(s) {unknown}") +
                           f"; allowed: exactly the arms {sorted(tuned)}")
    for name, values in tuning.chosen.items():
        if sorted(values) != sorted(tuned[name]):
            raise HarnessError(f"{where}.{name}': gives {sorted(values)}; allowed: exactly "
                               f"{sorted(tuned[name])} (the arm's tuned hyper-parameters)")


def _with_looks(spec: StudySpec, path: Path) -> StudySpec:
    """A study whose decision has looks runs `looks[-1]` final seeds (the maximum)."""
    looks = spec.decision.looks
    if spec.tuning is None:
        raise HarnessError(f"{path}: field 'decision': a declared decision needs a tuning block "
                           "(the tests compare the final seeds of tuned arms)")
    secondary = spec.decision.secondary_seeds
    most = looks[-1] if looks else len(spec.tuning.final_seed_list)
    if secondary is not None and secondary > most:
        raise HarnessError(f"{path}: field 'decision.secondary_seeds': {secondary} is more than "
                           f"the final seeds of the declared cells; allowed: 1 to {most}")
    if looks is None:
        return spec
    tuning = spec.tuning
    if "final_seeds" not in tuning.model_fields_set:
        return spec.model_copy(update={"tuning": tuning.model_copy(
            update={"final_seeds": looks[-1]})})
    if len(tuning.final_seed_list) != looks[-1]:
        raise HarnessError(f"{path}: field 'decision.looks': the last look is {looks[-1]} seeds "
                           f"but tuning.final_seeds gives {len(tuning.final_seed_list)}; allowed: "
                           "equal counts (or leave tuning.final_seeds out)")
    return spec


def _check_decision(spec: StudySpec, path: Path) -> None:
    """Every declared test names depths, optimizers and twins the study has, and a comparison
    its finals run."""
    from harness.study.tuning import unmatched_twins

    tuning = spec.tuning
    matched = tuning.matched_lr_controls or tuning.langevin == NOISE_ONLY or (
        tuning.chosen is not None and not any(unmatched_twins(spec, tuning.chosen)))
    plain = {opt.base for opt in spec.optimizers if not opt.noisy}
    for i, test in enumerate(spec.decision.tests):
        where = f"{path}: field 'decision.tests.{i}"
        unknown = sorted(set(test.depths) - set(spec.model.depths))
        if unknown:
            raise HarnessError(f"{where}.depths': {unknown} not in model.depths; allowed: some "
                               f"of {spec.model.depths}")
        bases = sorted(plain & {opt.base for opt in spec.optimizers if opt.noisy})
        unknown = sorted(set(test.optimizers or []) - set(bases))
        if unknown or not bases:
            raise HarnessError(f"{where}.optimizers': {unknown or 'none'} without a plain arm "
                               "and a Langevin twin in the study; allowed: some of "
                               f"{', '.join(bases) or '(no twins listed)'}")
        if test.comparison != "tuned" and not matched:
            raise HarnessError(f"{where}.comparison': {test.comparison} needs the twins at one "
                               "learning rate; allowed: tuned, or set tuning.matched_lr_controls"
                               ": true (or tuning.langevin: noise_only)")


def _check_optimizers(spec: StudySpec, path: Path, build: bool) -> None:
    """Check each optimizer's fields, hyper-parameter names and schedules; with `build`, construct it (with
    each tuned value at both ends of its range) so bad values and schedules fail before any
    trial."""
    for i, opt in enumerate(spec.optimizers):
        where = f"{path}: field 'optimizers.{i}"
        ranges = spec.tuning.ranges(opt.base) if spec.tuning else {}
        if opt.learning_rate is None and "learning_rate" not in ranges:
            raise HarnessError(f"{where}.learning_rate': missing; allowed: a number > 0 (or a "
                               "learning_rate range in tuning.space)")
        if opt.sigma == TUNE and spec.tuning is None:
            raise HarnessError(f"{where}.sigma': 'tune' needs a tuning block; allowed here: a "
                               "number >= 0")
        allowed = hyper_names(opt.base)
        unknown = sorted(set(opt.hyper) - set(allowed))
        if unknown:
            raise HarnessError(f"{where}.hyper': unknown hyper-parameter(s) {unknown}; "
                               f"allowed for {opt.base}: {', '.join(allowed)}")
        for field, schedule in (("lr_schedule", opt.lr_schedule),
                                ("sigma_schedule", opt.sigma_schedule)):
            try:
                check_schedule(schedule or {"name": "constant"})
            except ValueError as exc:
                raise HarnessError(f"{where}.{field}': {exc}") from None
        if not build:
            continue
        drawn = {k: r for k, r in ranges.items() if k != "sigma" or opt.sigma == TUNE}
        fixed = {"learning_rate": opt.learning_rate, "sigma": opt.sigma, **opt.hyper}
        lows = {k: r.low for k, r in drawn.items()}
        _construct(opt, {**fixed, **lows}, where, f"{where}.hyper'")
        for name, bounds in drawn.items():  # each tuned value at both ends of its range
            for end in ("low", "high"):
                values = {**fixed, **lows, name: getattr(bounds, end)}
                field = "tuning.space" if name in spec.tuning.space else \
                    f"tuning.space_by_base.{opt.base}"
                _construct(opt, values, where, f"{path}: field '{field}.{name}' ({end} end, "
                           f"for optimizers.{i})")


def _construct(opt: OptimizerSpec, values: dict, where: str, value_field: str) -> None:
    """Build the optimizer with these values: a bad schedule is named under `where`
    ("FILE: field 'optimizers.i"), a refused value under `value_field`."""
    from harness.optimizers import OPTIMIZERS
    from harness.optimizers.schedules import from_spec

    values = dict(values)
    try:
        lr = from_spec(values.pop("learning_rate"), opt.lr_schedule, steps_per_epoch=1)
    except ValueError as exc:
        raise HarnessError(f"{where}.lr_schedule': {exc}") from None
    try:
        sigma = from_spec(values.pop("sigma"), opt.sigma_schedule, steps_per_epoch=1)
    except ValueError as exc:
        raise HarnessError(f"{where}.sigma_schedule': {exc}") from None
    try:
        OPTIMIZERS[opt.base](learning_rate=lr, sigma=sigma, layer_fraction=opt.layer_fraction,
                             **values)
    except ValueError as exc:
        raise HarnessError(f"{value_field}: {exc}") from None


def _check_packing(spec: StudySpec, path: Path) -> None:
    """A packed study trains float32 chains of packable layers (dense, conv + dense, highway) on
    one device."""
    from harness.packing import NOT_PACKABLE, PACKABLE_FAMILIES

    if spec.packing in (None, 1):
        return
    where = f"{path}: field 'packing' ({spec.packing})"
    if spec.model.family not in PACKABLE_FAMILIES:
        why = NOT_PACKABLE.get(spec.model.family, "no packed model")
        raise HarnessError(f"{where}: model family {spec.model.family!r} cannot be packed ({why});"
                           f" allowed families: {', '.join(PACKABLE_FAMILIES)} (or no packing)")
    if spec.mixed_precision:
        raise HarnessError(f"{where}: packs train in float32; allowed: mixed_precision: false")
    if spec.resources.gpu > 1:
        raise HarnessError(f"{where}: a pack trains on one device; allowed: resources.gpu <= 1")


def _check_models(spec: StudySpec, path: Path) -> None:
    """Build each depth once (no training) so an impossible depth or option fails up front."""
    import keras

    from harness.data import dataset_info
    from harness.models import build_model

    try:
        info = dataset_info(spec.dataset.name, **spec.dataset.options)
    except (HarnessError, TypeError) as exc:
        raise HarnessError(f"{path}: field 'dataset.options': {exc}") from None
    for depth in spec.model.depths:
        try:
            build_model(spec.model.family, depth=depth, input_shape=info.input_shape,
                        num_classes=info.num_classes, **spec.model.options)
        except ValueError as exc:
            raise HarnessError(f"{path}: field 'model.depths' ({depth}): {exc}") from None
        finally:
            keras.backend.clear_session()


def trial_key(config: dict) -> str:
    """A readable, stable id of a trial: the same config always gets the same key."""
    digest = hashlib.sha1(json.dumps(config, sort_keys=True).encode()).hexdigest()[:8]
    phase = f"{config['phase']}{config['point']}-" if "phase" in config else ""
    return (f"{config['model']}{config['depth']}-{config['optimizer']}-{phase}s{config['seed']}-"
            f"{digest}")


def trial_config(spec: StudySpec, depth: int, opt: OptimizerSpec, seed: int,
                 **extra: Any) -> dict:
    """One flat, JSON-serialisable trial config (what Tune runs and MLflow records as params).

    `extra` overrides or adds keys: a tuned trial passes its drawn `learning_rate`, `sigma`,
    `hyper` and its `phase`, `arm`, `point`. The trial key hashes the whole config.
    """
    data_dir = spec.dataset.data_dir
    if data_dir and "://" not in data_dir:  # local: absolute, trials run in other directories
        data_dir = str(Path(data_dir).resolve())
    config = {
        "study": spec.name,
        "experiment": spec.experiment_name,
        "dataset": spec.dataset.name,
        "batch_size": spec.dataset.batch_size,
        "validation_size": spec.dataset.validation_size,
        "limit": spec.dataset.limit,
        "augment": spec.dataset.augment,
        "standardize": spec.dataset.standardize,
        "data_dir": data_dir,
        "dataset_options": dict(spec.dataset.options),
        "model": spec.model.family,
        "depth": depth,
        "model_options": dict(spec.model.options),
        "optimizer": opt.display,
        "base_optimizer": opt.base,
        "variant": opt.variant,
        "learning_rate": opt.learning_rate,
        "lr_schedule": opt.lr_schedule,
        "sigma": opt.sigma,
        "sigma_schedule": opt.sigma_schedule,
        "layer_fraction": opt.layer_fraction,
        "hyper": dict(opt.hyper),
        "seed": seed,
        "epochs": spec.epochs,
        "mixed_precision": spec.mixed_precision,
        "jit_compile": spec.jit_compile,
        **extra,
    }
    config["trial_key"] = trial_key(config)
    return config


def trial_configs(spec: StudySpec) -> list[dict]:
    """The grid depth × optimizer × seed of an untuned study (a tuned one: `tuning.py`)."""
    return [trial_config(spec, depth, opt, seed) for depth, opt, seed
            in itertools.product(spec.model.depths, spec.optimizers, spec.seeds)]


def flatten(config: dict, prefix: str = "") -> dict[str, Any]:
    """{"hyper": {"beta_1": 0.9}} → {"hyper.beta_1": 0.9}: MLflow params are flat."""
    flat = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat
