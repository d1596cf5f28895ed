"""Datasets of the paper as tf.data pipelines, offline-capable.

- `DATASETS`, `DatasetInfo`, `dataset_info(name, **synthetic_options)`: what exists and its shape;
- `open_splits(name, batch_size, seed, ...)`: `Splits` whose `train(epoch)` rebuilds any epoch
  (what trials use, so a resumed trial sees the same batches);
- `load_dataset(name, split, batch_size, seed, ...)`, `load_splits(...)`: batched pipelines of
  (float32 image, int64 label) with validation carved from train (see `harness.data.pipeline`);
- `prepare(name, from_dir, data_dir)`: build tfds' prepared format from the official archives
  (see `harness.data.prepare`); the CLI is `harness data prepare`.

Importing this package is cheap (the CLI's `--help` imports it): TensorFlow loads when
`load_dataset` or `load_splits` is first looked up.
"""

from harness.data.catalog import DATASETS, DatasetInfo, dataset_info
from harness.data.prepare import prepare

__all__ = [
    "DATASETS", "DatasetInfo", "dataset_info", "load_dataset", "load_splits", "open_splits",
    "prepare",
]


def __getattr__(name):
    if name in ("load_dataset", "load_splits", "open_splits"):
        from harness.data import pipeline

        return getattr(pipeline, name)
    raise AttributeError(f"module 'harness.data' has no attribute {name!r}")
