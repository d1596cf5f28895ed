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
"""

from __future__ import annotations

import hashlib
import inspect
import itertools
import json
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from harness.data.catalog import DATASETS
from harness.errors import HarnessError
from harness.models import MODEL_FAMILIES
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


class OptimizerSpec(_Strict):
    base: Literal[BASES]  # type: ignore[valid-type]
    learning_rate: float = Field(gt=0)
    lr_schedule: dict[str, Any] | None = None
    sigma: float = Field(0.0, ge=0, description="0: the plain (non-Langevin) optimizer")
    sigma_schedule: dict[str, Any] | None = None
    layer_fraction: float = Field(1.0, ge=0, le=1, description="1: full Langevin")
    hyper: dict[str, float] = Field(default_factory=dict, description="beta_1, epsilon, rho, ...")
    name: str | None = Field(None, description="display name; default Adam / L-Adam / LL-Adam")

    @property
    def display(self) -> str:
        return self.name or display_name(self.base, self.sigma, self.layer_fraction)


class Resources(_Strict):
    cpu: float = Field(1, gt=0)
    gpu: float = Field(0, ge=0)


class StudySpec(_Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    description: str = ""
    dataset: DatasetSpec
    model: ModelSpec
    optimizers: list[OptimizerSpec] = Field(min_length=1)
    seeds: list[int] | int = Field(3, description="a list of seeds, or N for seeds 0..N-1")
    epochs: int = Field(ge=1)
    resources: Resources = Resources()
    mixed_precision: bool = False
    jit_compile: bool | Literal["auto"] = "auto"
    max_concurrent_trials: int | None = Field(None, ge=1)
    max_failures: int = Field(2, ge=0, description="retries of a trial that crashed")
    experiment: str | None = Field(None, description="MLflow experiment; default: name")
    storage_path: str | None = Field(None, description="Ray results; default ./results")

    @field_validator("seeds")
    @classmethod
    def _seeds(cls, seeds):
        seeds = list(range(seeds)) if isinstance(seeds, int) else seeds
        if not seeds or any(s < 0 for s in seeds) or len(set(seeds)) != len(seeds):
            raise ValueError("seeds must be N >= 1 or a non-empty list of distinct integers >= 0")
        return seeds

    @property
    def experiment_name(self) -> str:
        return self.experiment or self.name


def _field_error(path: Path, error: dict, model: type[BaseModel]) -> str:
    loc = ".".join(str(p) for p in error["loc"])
    if error["type"] == "extra_forbidden":
        owner = model
        for part in error["loc"][:-1]:
            field = owner.model_fields.get(str(part)) if isinstance(part, str) else None
            annotation = getattr(field, "annotation", None)
            args = getattr(annotation, "__args__", ()) or (annotation,)
            owner = next((a for a in args if isinstance(a, type) and issubclass(a, BaseModel)), owner)
        return f"{path}: unknown field '{loc}'; allowed here: {', '.join(owner.model_fields)}"
    if error["type"] == "missing":
        return f"{path}: missing required field '{loc}'"
    return f"{path}: field '{loc}': {error['msg']}"


def parse_space(data: Any, path: Path) -> StudySpec:
    """Validate an already-parsed YAML document; `path` only names the file in errors."""
    if not isinstance(data, dict):
        raise HarnessError(f"{path}: a search space is a YAML mapping with fields {', '.join(StudySpec.model_fields)}")
    try:
        spec = StudySpec.model_validate(data)
    except ValidationError as exc:
        raise HarnessError(_field_error(path, exc.errors()[0], StudySpec)) from None
    _check_optimizers(spec, path)
    _check_models(spec, path)
    return spec


def load_space(path: str | Path) -> StudySpec:
    """Read and validate a search-space file (one-line `HarnessError` on any problem)."""
    path = Path(path)
    if not path.is_file():
        raise HarnessError(f"{path}: no such search-space file")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise HarnessError(f"{path}: not valid YAML: {str(exc).splitlines()[0]}") from None
    return parse_space(data, path)


_NOT_HYPER = ("self", "learning_rate", "sigma", "seed", "name")


def _check_optimizers(spec: StudySpec, path: Path) -> None:
    """Construct each optimizer once so bad hyper-parameters and schedules fail before any trial."""
    from harness.optimizers import OPTIMIZERS
    from harness.optimizers.schedules import from_spec

    for i, opt in enumerate(spec.optimizers):
        where = f"{path}: field 'optimizers.{i}"
        try:
            lr = from_spec(opt.learning_rate, opt.lr_schedule, steps_per_epoch=1)
        except ValueError as exc:
            raise HarnessError(f"{where}.lr_schedule': {exc}") from None
        try:
            sigma = from_spec(opt.sigma, opt.sigma_schedule, steps_per_epoch=1)
        except ValueError as exc:
            raise HarnessError(f"{where}.sigma_schedule': {exc}") from None
        cls = OPTIMIZERS[opt.base]
        allowed = [name for name, p in inspect.signature(cls.__init__).parameters.items()
                   if p.kind is p.POSITIONAL_OR_KEYWORD and name not in _NOT_HYPER]
        unknown = sorted(set(opt.hyper) - set(allowed))
        if unknown:
            raise HarnessError(f"{where}.hyper': unknown hyper-parameter(s) {unknown}; "
                               f"allowed for {opt.base}: {', '.join(allowed)}")
        try:
            cls(learning_rate=lr, sigma=sigma, layer_fraction=opt.layer_fraction, **opt.hyper)
        except ValueError as exc:
            raise HarnessError(f"{where}.hyper': {exc}") from None


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
    return f"{config['model']}{config['depth']}-{config['optimizer']}-s{config['seed']}-{digest}"


def trial_configs(spec: StudySpec) -> list[dict]:
    """The grid depth × optimizer × seed as flat, JSON-serialisable trial configs."""
    data_dir = spec.dataset.data_dir
    if data_dir and "://" not in data_dir:  # local: absolute, trials run in other directories
        data_dir = str(Path(data_dir).resolve())
    configs = []
    for depth, opt, seed in itertools.product(spec.model.depths, spec.optimizers, spec.seeds):
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
            "variant": variant_of(opt.sigma, opt.layer_fraction),
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
        }
        config["trial_key"] = trial_key(config)
        configs.append(config)
    return configs


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
