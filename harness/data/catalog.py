"""Which datasets the harness knows, and their shapes and sizes.

The sizes of the tensorflow-datasets entries are the official split sizes (static, so that
`dataset_info` answers without touching tfds or the disk); `synthetic` takes its shape and sizes
from its options.
"""

from __future__ import annotations

from dataclasses import dataclass

from harness.errors import HarnessError

DATASETS = ("mnist", "fashion_mnist", "cifar10", "cifar100", "synthetic")

SYNTHETIC_DEFAULTS = {
    "shape": (28, 28, 1),
    "num_classes": 10,
    "train_size": 6000,
    "test_size": 1000,
}

# Validation examples carved from the training split unless the caller says otherwise.
DEFAULT_VALIDATION_SIZE = 5000


@dataclass(frozen=True)
class DatasetInfo:
    """Shape and size of a dataset as the model builder and the runner need them."""

    name: str
    input_shape: tuple
    num_classes: int
    train_size: int
    test_size: int

    @property
    def augments_by_default(self) -> bool:
        """CIFAR trains with pad-4 + random crop + flip; the MNIST family and synthetic don't."""
        return self.name in ("cifar10", "cifar100")

    @property
    def default_validation_size(self) -> int:
        """5000 for the real datasets, a tenth of the training split for `synthetic`."""
        if self.name == "synthetic":
            return self.train_size // 10
        return DEFAULT_VALIDATION_SIZE

    def split_sizes(self, validation_size: int | None = None, limit: int | None = None,
                    available: int | None = None) -> tuple[int, int]:
        """(train, validation) examples of a trial: the source training split (its first
        `limit`; `available` once it is read) less the validation examples carved from it
        (None: `default_validation_size`, or a tenth of the examples when `limit` is set)."""
        if available is None:
            available = self.train_size if limit is None else min(int(limit), self.train_size)
        if validation_size is None:
            validation_size = self.default_validation_size if limit is None else available // 10
        return available - int(validation_size), int(validation_size)


_TFDS_INFO = {
    "mnist": DatasetInfo("mnist", (28, 28, 1), 10, 60000, 10000),
    "fashion_mnist": DatasetInfo("fashion_mnist", (28, 28, 1), 10, 60000, 10000),
    "cifar10": DatasetInfo("cifar10", (32, 32, 3), 10, 50000, 10000),
    "cifar100": DatasetInfo("cifar100", (32, 32, 3), 100, 50000, 10000),
}


def check_name(name: str) -> str:
    if name not in DATASETS:
        raise HarnessError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")
    return name


def dataset_info(name: str, **synthetic_options) -> DatasetInfo:
    """The `DatasetInfo` of `name`; `synthetic_options` (shape, num_classes, train_size,
    test_size) apply to `synthetic` only."""
    check_name(name)
    if name != "synthetic":
        if synthetic_options:
            raise HarnessError(
                f"options {sorted(synthetic_options)} apply to the synthetic dataset only"
            )
        return _TFDS_INFO[name]
    unknown = set(synthetic_options) - set(SYNTHETIC_DEFAULTS)
    if unknown:
        raise HarnessError(
            f"unknown synthetic options {sorted(unknown)}; allowed: {sorted(SYNTHETIC_DEFAULTS)}"
        )
    options = {**SYNTHETIC_DEFAULTS, **synthetic_options}
    shape = tuple(int(s) for s in options["shape"])
    if len(shape) != 3 or min(shape) < 1:
        raise HarnessError(f"synthetic shape must be (height, width, channels), got {shape}")
    if int(options["num_classes"]) < 2:
        raise HarnessError(f"synthetic num_classes must be >= 2, got {options['num_classes']}")
    if int(options["train_size"]) < 1 or int(options["test_size"]) < 1:
        raise HarnessError("synthetic train_size and test_size must be >= 1")
    return DatasetInfo(
        "synthetic",
        shape,
        int(options["num_classes"]),
        int(options["train_size"]),
        int(options["test_size"]),
    )
