"""Refuse a study file that cannot run as written, in milliseconds and before anything is built.

`check_document(data, path)` runs on the parsed YAML before validation (counts that would make
validation itself hang); `check_spec(spec, path)` runs on the validated `StudySpec` before any
model is built. Each refusal is one `HarnessError` line naming the file, the field and what is
allowed. What is refused:

- a network Keras cannot build: Keras walks a functional graph recursively, one Python frame per
  layer on the longest input-to-logits path, so past `MAX_PATH` layers it dies with
  RecursionError (a dense net of depth 990 already does);
- a trial that needs more memory than the trial's machine has (see `trial_bytes`);
- more than `MAX_TRIALS` trials in one study;
- `validation_size` not smaller than the training examples it is carved from;
- a study or optimizer name that would put files outside the study's folder (the study name is a
  folder under the storage path, the optimizer name part of every trial's folder name);
- two trials under one trial key (a depth or an optimizer listed twice) and two optimizer
  entries with one display name (the analysis would pool them as one arm);
- a key given twice in the YAML file (the last one would silently win): `check_unique_keys`.

The sizes come from closed forms per model family (`network_size`), checked against the built
Keras models in tests/test_limits.py.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from pathlib import Path

import yaml

from harness.data.catalog import dataset_info
from harness.errors import HarnessError
from harness.models.depths import check_depth
from harness.signatures import family_options

MAX_PATH = 900  # layers on the longest path; Python's default recursion limit is 1000
MAX_TRIALS = 10_000  # Tune keeps every trial's state in the driver and pickles it each epoch
BYTES_PER_FLOAT = 4
# Per parameter: the weight, its gradient and two optimizer slots (Adam's m and v).
PARAMETER_COPIES = 4
# Per activation and example: the layer output kept for the backward pass and its gradient.
ACTIVATION_COPIES = 2
# The decoded uint8 images live in memory twice: the NumPy arrays and the tf.constant of a split.
DATA_COPIES = 2
MEMORY_ENV = "HARNESS_TRIAL_MEMORY_GB"
SAFE_NAME = re.compile(r"^[A-Za-z0-9_+-][A-Za-z0-9_.+-]*$")


@dataclass(frozen=True)
class NetworkSize:
    """What one network costs: parameters (trainable and not), layers on the longest
    input-to-logits path (InputLayer included), and floats in all layer outputs per example."""

    parameters: int
    longest_path: int
    activations: int


def _dense_stack(features: int, depth: int, width: int, num_classes: int) -> NetworkSize:
    """depth × Dense(width) on `features` inputs, then the Dense logits (path excludes input)."""
    parameters = features * width + width + (depth - 1) * (width * width + width)
    parameters += width * num_classes + num_classes
    return NetworkSize(parameters, depth + 1, depth * width + num_classes)


def _plus(size: NetworkSize, parameters: int, path: int, activations: int) -> NetworkSize:
    return NetworkSize(size.parameters + parameters, size.longest_path + path,
                       size.activations + activations)


def _dense(depth, shape, num_classes, *, width):
    features = math.prod(shape)  # InputLayer + Flatten
    return _plus(_dense_stack(features, depth, width, num_classes), 0, 2, 2 * features)


def _conv_dense(depth, shape, num_classes, *, width, filters):
    height, width_px, channels = shape
    parameters, activations, path = 0, math.prod(shape), 1
    for stage_in in (channels, filters):  # Conv2D 4×4 valid, then MaxPool 2×2
        height, width_px = height - 3, width_px - 3
        parameters += 16 * stage_in * filters + filters
        activations += height * width_px * filters
        height, width_px = height // 2, width_px // 2
        activations += height * width_px * filters
        path += 2
    features = height * width_px * filters  # Flatten
    return _plus(_dense_stack(features, depth, width, num_classes), parameters, path + 1,
                 activations + features)


def _highway(depth, shape, num_classes, *, width, transform_bias):
    features = math.prod(shape)  # InputLayer + Flatten, then the linear stem Dense(width)
    parameters = features * width + width + depth * (2 * width * width + 2 * width)
    return NetworkSize(parameters + width * num_classes + num_classes, depth + 4,
                       2 * features + width + depth * width + num_classes)


def _cifar_stack(depth, shape, num_classes, *, residual, shortcut="padding"):
    """resnet.cifar_stack: stem conv-BN-ReLU, 3 stages of n basic blocks, pool, logits."""
    n = (depth - 2) // 6
    height, width, channels = shape
    stem_filters = 16
    parameters = 9 * channels * stem_filters + 4 * stem_filters
    activations = math.prod(shape) + 3 * height * width * stem_filters
    block_path = 7 if residual else 6  # conv BN ReLU conv BN [Add] ReLU
    channels = stem_filters
    for stage, filters in enumerate((16, 32, 64), start=1):
        for block in range(1, n + 1):
            stride = 2 if stage > 1 and block == 1 else 1
            height, width = -(-height // stride), -(-width // stride)
            pixels = height * width
            parameters += 9 * channels * filters + 9 * filters * filters + 8 * filters
            activations += block_path * pixels * filters
            if residual and (stride != 1 or channels != filters):
                if shortcut == "projection":
                    parameters += channels * filters + 4 * filters
                    activations += 2 * pixels * filters
                else:
                    activations += pixels * filters
            channels = filters
    parameters += channels * num_classes + num_classes
    return NetworkSize(parameters, 4 + 3 * n * block_path + 2,
                       activations + channels + num_classes)


def _resnet(depth, shape, num_classes, *, shortcut, weight_decay):
    return _cifar_stack(depth, shape, num_classes, residual=True, shortcut=shortcut)


def _vgg(depth, shape, num_classes, *, weight_decay):
    return _cifar_stack(depth, shape, num_classes, residual=False)


def _densenet(depth, shape, num_classes, *, growth_rate, initial_filters, weight_decay):
    """densenet.build: stem conv, 3 blocks of m BN-ReLU-conv-concat layers, 2 transitions."""
    m = (depth - 4) // 3
    height, width, channels = shape
    pixels = height * width
    parameters = 9 * channels * initial_filters
    activations = math.prod(shape) + pixels * initial_filters
    channels = initial_filters
    for block in range(1, 4):
        for _ in range(m):
            parameters += 4 * channels + 9 * channels * growth_rate
            activations += pixels * (3 * channels + 2 * growth_rate)  # BN, ReLU, conv, concat
            channels += growth_rate
        if block < 3:  # BN-ReLU-conv1×1 (channels kept), average-pool 2×2
            parameters += 4 * channels + channels * channels
            activations += 3 * pixels * channels
            height, width = height // 2, width // 2
            pixels = height * width
            activations += pixels * channels
    parameters += 4 * channels + channels * num_classes + num_classes
    activations += 2 * pixels * channels + channels + num_classes
    return NetworkSize(parameters, 2 + 12 * m + 8 + 4, activations)


_FAMILIES = {"dense": _dense, "conv_dense": _conv_dense, "highway": _highway,
             "resnet": _resnet, "vgg": _vgg, "densenet": _densenet}


def network_size(family: str, depth: int, input_shape: tuple, num_classes: int,
                 **options) -> NetworkSize | None:
    """The `NetworkSize` of `build_model(family, depth, ...)` without building it; None when
    the options are not the family's (the builder then names what is allowed)."""
    defaults = family_options(family)
    if set(options) - set(defaults):
        return None
    try:
        return _FAMILIES[family](int(depth), tuple(int(s) for s in input_shape),
                                 int(num_classes), **{**defaults, **options})
    except (TypeError, ValueError):
        return None


def memory_limit_bytes() -> tuple[int, str]:
    """(bytes, where from): `HARNESS_TRIAL_MEMORY_GB` when set, else this machine's memory
    (its cgroup limit when lower)."""
    if os.environ.get(MEMORY_ENV):
        return int(float(os.environ[MEMORY_ENV]) * 2**30), MEMORY_ENV
    limit = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    cgroup = Path("/sys/fs/cgroup/memory.max")
    if cgroup.is_file() and cgroup.read_text().strip().isdigit():
        limit = min(limit, int(cgroup.read_text()))
    return limit, f"this machine's memory; set {MEMORY_ENV} for the trials' machines"


def trial_bytes(size: NetworkSize, global_batch: int, data_examples: int,
                image_shape: tuple) -> int:
    """Memory of one trial: 4 B × (4 × parameters + 2 × activations × global batch) for the
    network and its training step, plus 2 × examples × pixels bytes of decoded uint8 images."""
    network = PARAMETER_COPIES * size.parameters + ACTIVATION_COPIES * size.activations * global_batch
    return BYTES_PER_FLOAT * network + DATA_COPIES * data_examples * math.prod(image_shape)


def _gib(n: int) -> str:
    return f"{n / 2**30:.3g} GiB"


def check_unique_keys(text: str, path: Path) -> None:
    """Refuse a YAML mapping that gives one key twice (PyYAML keeps the last without a word)."""
    try:
        root = yaml.compose(text)
    except yaml.YAMLError:
        return  # the loader reports the syntax error
    stack = [(root, "")]
    while stack:
        node, prefix = stack.pop()
        if isinstance(node, yaml.SequenceNode):
            stack += [(item, f"{prefix}{i}.") for i, item in enumerate(node.value)]
        if not isinstance(node, yaml.MappingNode):
            continue
        seen: dict[str, int] = {}
        for key, value in node.value:
            line = key.start_mark.line + 1
            if key.value in seen:
                raise HarnessError(f"{path}: field '{prefix}{key.value}' is given twice (lines "
                                   f"{seen[key.value]} and {line}); allowed: each key once")
            seen[key.value] = line
            stack.append((value, f"{prefix}{key.value}."))


def check_document(data, path: Path) -> None:
    """Counts that would make validation itself take minutes: `seeds: N` beyond MAX_TRIALS."""
    seeds = data.get("seeds") if isinstance(data, dict) else None
    if isinstance(seeds, int) and not isinstance(seeds, bool) and seeds > MAX_TRIALS:
        raise HarnessError(f"{path}: field 'seeds' is {seeds}; allowed: at most {MAX_TRIALS} "
                           "trials in a study")


def _check_names(spec, path: Path) -> None:
    if set(spec.name) == {"."}:
        raise HarnessError(f"{path}: field 'name' is {spec.name!r}, which names a folder outside "
                           "the storage path; allowed: letters, digits, _ . - (not only dots)")
    for i, opt in enumerate(spec.optimizers):
        if opt.name is not None and not SAFE_NAME.match(opt.name):
            raise HarnessError(
                f"{path}: field 'optimizers.{i}.name' is {opt.name!r}; it names every trial's "
                "folder, so allowed: letters, digits and _ + - . (not first), e.g. L-Adam")


def _check_duplicates(spec, path: Path) -> None:
    depths = spec.model.depths
    repeated = sorted({d for d in depths if depths.count(d) > 1})
    if repeated:
        raise HarnessError(f"{path}: field 'model.depths' lists {repeated} twice, which would "
                           "run the same trials twice under one trial key; allowed: each depth once")
    shown: dict[str, int] = {}
    for i, opt in enumerate(spec.optimizers):
        earlier = next((j for j, o in enumerate(spec.optimizers[:i]) if o == opt), None)
        if earlier is not None:
            raise HarnessError(f"{path}: field 'optimizers.{i}' repeats optimizers.{earlier}, "
                               "which would run the same trials twice under one trial key; "
                               "allowed: each optimizer once")
        if opt.display in shown:
            raise HarnessError(
                f"{path}: field 'optimizers.{i}' has the display name {opt.display!r} of "
                f"optimizers.{shown[opt.display]}; the analysis would pool them as one arm; "
                "allowed: a distinct `name` for each (e.g. name: Adam-lr1e-2)")
        shown[opt.display] = i


def _check_trials(spec, path: Path) -> None:
    """Grid: depths × optimizers × seeds; tuned: depths × optimizers × (tuning trials per arm
    + final seeds, three times with matched-learning-rate controls)."""
    tuning = getattr(spec, "tuning", None)
    if tuning is None:
        per_arm, fields = len(spec.seeds), "'seeds'"
    else:  # at most: every Langevin arm's two matched-learning-rate controls on every seed
        finals = len(tuning.final_seed_list) * (3 if tuning.matched_lr_controls else 1)
        per_arm = tuning.trials_per_arm + finals
        fields = "('tuning.budget' + screening + 'tuning.final_seeds' with controls)"
    trials = len(spec.model.depths) * len(spec.optimizers) * per_arm
    if trials > MAX_TRIALS:
        raise HarnessError(f"{path}: fields 'model.depths' × 'optimizers' × {fields} make "
                           f"{trials} trials; allowed: at most {MAX_TRIALS} trials in a study")


def _check_validation(spec, info, path: Path) -> int:
    """The number of training examples the split is carved from; refuses a validation_size
    that leaves none (the pipeline's own default never does)."""
    data = spec.dataset
    examples = min(info.train_size, data.limit) if data.limit else info.train_size
    if data.validation_size is not None and data.validation_size >= examples:
        source = f"limit {data.limit}" if data.limit and data.limit < info.train_size else \
            f"the {info.train_size} training examples of {info.name}"
        raise HarnessError(
            f"{path}: field 'dataset.validation_size' is {data.validation_size} but the training "
            f"split has {examples} examples ({source}); allowed: 0 to {examples - 1}")
    return examples


def _largest_depth(fits, depth: int) -> int:
    """The largest d < depth with fits(d) (fits is monotone in d), 0 when none."""
    low, high = 0, depth
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (middle, high) if fits(middle) else (low, middle)
    return low


def _check_networks(spec, info, train_examples: int, path: Path) -> None:
    model, options = spec.model, spec.model.options
    replicas = max(1, int(spec.resources.gpu))
    global_batch = spec.dataset.batch_size * replicas
    data_examples = train_examples + (min(info.test_size, spec.dataset.limit)
                                      if spec.dataset.limit else info.test_size)
    limit, source = memory_limit_bytes()

    def size(depth):
        return network_size(model.family, depth, info.input_shape, info.num_classes, **options)

    def needs(depth):
        return trial_bytes(size(depth), global_batch, data_examples, info.input_shape)

    def fits(depth):
        return size(depth).longest_path <= MAX_PATH and needs(depth) <= limit

    allowed_options = family_options(model.family)
    unknown = sorted(set(options) - set(allowed_options))
    if unknown:
        raise HarnessError(f"{path}: field 'model.options': {model.family} takes no {unknown}; "
                           f"allowed options: {sorted(allowed_options)}")
    for depth in model.depths:
        try:
            check_depth(model.family, depth)
        except ValueError as exc:
            raise HarnessError(f"{path}: field 'model.depths' ({depth}): {exc}") from None
    for depth in sorted(set(model.depths), reverse=True):
        found = size(depth)
        if found is None:
            return  # an option's value the family refuses: the model check names it
        if fits(depth):
            continue
        allowed = f"{model.family} depths up to {_largest_depth(fits, depth)}"
        where = f"{path}: field 'model.depths' ({depth})"
        if found.longest_path > MAX_PATH:
            raise HarnessError(
                f"{where}: a {model.family} net of depth {depth} has {found.longest_path} layers "
                f"on its longest path; Keras builds at most {MAX_PATH} (it recurses once per "
                f"layer); allowed: {allowed}")
        raise HarnessError(
            f"{where}: {found.parameters:.3g} parameters, batch {global_batch} and the images "
            f"need about {_gib(needs(depth))} per trial; allowed: at most {_gib(limit)} "
            f"({source}), i.e. {allowed} with these options and batch size")


def check_spec(spec, path: Path) -> None:
    """Everything in the module docstring that a validated `StudySpec` can still get wrong."""
    _check_names(spec, path)
    _check_duplicates(spec, path)
    _check_trials(spec, path)
    try:
        info = dataset_info(spec.dataset.name, **spec.dataset.options)
    except (HarnessError, TypeError):
        return  # the model check reports bad dataset options
    examples = _check_validation(spec, info, path)
    _check_networks(spec, info, examples, path)


def check_cluster_storage(given: str | None, where: str, out=print) -> None:
    """On a Ray cluster (not the embedded local Ray): refuse a missing or relative storage path,
    which would resolve inside a Ray job's working directory (deleted after the job) or on one
    node only; warn about an absolute local path when several nodes are alive (it must be a
    mount every node shares, e.g. NFS)."""
    import ray

    if given and "://" in given:
        return
    allowed = ("allowed: s3://BUCKET/PATH, gs://BUCKET/PATH or an absolute path every node "
               "mounts (NFS), as storage_path or --storage-path")
    if not given or not os.path.isabs(os.path.expanduser(given)):
        shown = repr(given) if given else "not set (default ./results)"
        raise HarnessError(f"{where}: field 'storage_path' is {shown}; on a Ray cluster a "
                           "relative path lands in the job's working directory, which Ray "
                           f"deletes after the job; {allowed}")
    nodes = sum(node["Alive"] for node in ray.nodes())
    if nodes > 1:
        out(f"warning: storage_path {given} is local to each of the cluster's {nodes} nodes: "
            "trials moved between nodes lose their checkpoints unless every node mounts it at "
            "the same place (NFS); s3:// or gs:// are safe")
