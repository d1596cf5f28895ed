"""tf.data pipelines: validation carved from train, preprocessing, augmentation, batching.

The decoded uint8 images of a dataset are read once and held in memory (this is the cache after
decode: tfds' PNGs are never decoded twice). Each split is then a pipeline of example indices:

- train: shuffle the indices (seeded, reshuffled every epoch) → batch → gather the images →
  [augment the batch] → scale to float32 → prefetch;
- validation / test: the same in a fixed order, never augmented.

Gathering whole batches keeps tf.data's per-example overhead to shuffling integers, and the
gather/augment/scale map runs in parallel (`AUTOTUNE`, deterministic order).

Scaling is pixels/255, optionally followed by per-channel standardisation with the mean and
standard deviation of the (carved) training images. CIFAR augmentation (He et al. 2016, §4.2):
zero-pad 4 pixels per side, take a random 32×32 crop, flip horizontally with probability 1/2.

Determinism: the shuffle uses `seed`; the augmentation draws come from stateless ops keyed by
`tf.data.Dataset.random(seed, rerandomize_each_iteration=True)`, zipped to the shuffled batches,
so parallel `map` calls cannot reorder them. The same seed therefore gives the same order and the
same augmented images in every epoch of a rebuilt pipeline, and every epoch differs from the last.

`batch_size` is the global batch: Keras' `fit` under a `tf.distribute` strategy splits each batch
across replicas; the auto-shard policy is DATA so that several workers read disjoint examples.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import numpy as np
import tensorflow as tf

from harness.data import synthetic, tfds_source
from harness.data.catalog import DatasetInfo, check_name, dataset_info
from harness.errors import HarnessError

SPLITS = ("train", "validation", "test")
PAD = 4


def carve_validation(num_train: int, validation_size: int, seed: int):
    """(train indices, validation indices): a seeded random `validation_size` subset of
    range(num_train) becomes validation, the rest train; both sorted, disjoint."""
    if not 0 <= validation_size < num_train:
        raise HarnessError(
            f"validation_size must be in [0, {num_train}) for {num_train} training examples, "
            f"got {validation_size}"
        )
    order = np.random.default_rng(seed).permutation(num_train)
    return np.sort(order[validation_size:]), np.sort(order[:validation_size])


def _scaler(train_images: np.ndarray, standardize: bool):
    """Batch function uint8 images → float32 pixels/255, per-channel standardised if asked."""
    if not standardize:
        return lambda images, labels: (tf.cast(images, tf.float32) / 255.0, labels)
    scaled = train_images.reshape(-1, train_images.shape[-1]).astype(np.float64) / 255.0
    mean = tf.constant(scaled.mean(axis=0), tf.float32)
    std = tf.constant(np.maximum(scaled.std(axis=0), 1e-6), tf.float32)
    return lambda images, labels: ((tf.cast(images, tf.float32) / 255.0 - mean) / std, labels)


def _augment(images, key):
    """Per image: zero-pad 4, random crop back to the original size, flip with probability 1/2.

    Vectorised over the batch (B, H, W, C): offsets and flips are stateless draws from `key`
    (shape (2, 2)), the crops are two batched gathers.
    """
    batch, height, width = tf.shape(images)[0], images.shape[1], images.shape[2]
    padded = tf.pad(images, [[0, 0], [PAD, PAD], [PAD, PAD], [0, 0]])
    offsets = tf.random.stateless_uniform(
        (batch, 2), seed=key[0], minval=0, maxval=2 * PAD + 1, dtype=tf.int32
    )
    rows = offsets[:, :1] + tf.range(height)
    cols = offsets[:, 1:] + tf.range(width)
    crops = tf.gather(tf.gather(padded, rows, axis=1, batch_dims=1), cols, axis=2, batch_dims=1)
    flip = tf.random.stateless_uniform((batch,), seed=key[1]) < 0.5
    return tf.where(flip[:, None, None, None], tf.reverse(crops, axis=[2]), crops)


def _keys(seed: int) -> tf.data.Dataset:
    """Per-batch stateless seeds, shape (2, 2): new each epoch, the same for the same seed."""
    return (
        tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True)
        .batch(2, drop_remainder=True)
        .batch(2, drop_remainder=True)
    )


def _pipeline(images, labels, batch_size, *, scale, train=False, augment=False, seed=0):
    """Batches of example indices (shuffled for training) → gathered images → [augment] → scale."""
    images, labels = tf.constant(images), tf.constant(labels)
    ds = tf.data.Dataset.range(len(labels))
    if train:
        ds = ds.shuffle(len(labels), seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size)

    if augment:
        ds = tf.data.Dataset.zip(ds, _keys(seed))

    def fetch(index, key=None):
        batch = tf.gather(images, index)
        if key is not None:
            batch = _augment(batch, key)
        return scale(batch, tf.gather(labels, index))

    ds = ds.map(fetch, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    options = tf.data.Options()
    options.deterministic = True
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return ds.prefetch(tf.data.AUTOTUNE).with_options(options)


def _frozen(value):
    """A hashable copy of an option value (lists become tuples), for the read cache's key."""
    return tuple(_frozen(v) for v in value) if isinstance(value, list | tuple) else value


def _read(name: str, data_dir, limit, synthetic_options) -> tuple[DatasetInfo, dict]:
    """The decoded arrays of a dataset, read once per process: a worker that runs many trials
    (Tune reuses its actors) reads MNIST once instead of once per trial. Callers never write
    into the cached arrays (every split is a gathered copy)."""
    key = tuple(sorted((k, _frozen(v)) for k, v in synthetic_options.items()))
    return _read_cached(name, None if data_dir is None else str(data_dir), limit, key)


@functools.lru_cache(maxsize=2)
def _read_cached(name: str, data_dir, limit, options: tuple) -> tuple[DatasetInfo, dict]:
    synthetic_options = {k: list(v) if isinstance(v, tuple) else v for k, v in options}
    info = dataset_info(name, **synthetic_options)
    if limit is not None and int(limit) < 1:
        raise HarnessError(f"limit must be a positive number of examples, got {limit}")
    if name == "synthetic":
        arrays = synthetic.make_arrays(info)
        if limit is not None:
            arrays = {k: (x[: int(limit)], y[: int(limit)]) for k, (x, y) in arrays.items()}
    else:
        arrays = tfds_source.read_arrays(name, data_dir, limit)
    return info, arrays


def epoch_seed(seed: int, epoch: int) -> int:
    """The shuffle/augmentation seed of one epoch, derived from (seed, epoch) by SeedSequence."""
    return int(np.random.SeedSequence([seed, epoch]).generate_state(1)[0])


@dataclass(frozen=True)
class Splits:
    """The three splits of a dataset, decoded once; the training split is rebuilt per epoch.

    `train(epoch)` is the order (and augmentation) of that epoch alone, from `epoch_seed(seed,
    epoch)`: a trial resumed at epoch e gets exactly the batches an uninterrupted one would.
    """

    info: DatasetInfo
    batch_size: int
    seed: int
    validation: tf.data.Dataset | None
    test: tf.data.Dataset
    _train_arrays: tuple = field(repr=False)
    _scale: object = field(repr=False)
    _augment: bool = False

    @property
    def num_train(self) -> int:
        return len(self._train_arrays[1])

    @property
    def steps_per_epoch(self) -> int:
        return -(-self.num_train // self.batch_size)

    def train(self, epoch: int) -> tf.data.Dataset:
        return _pipeline(*self._train_arrays, self.batch_size, scale=self._scale, train=True,
                         augment=self._augment, seed=epoch_seed(self.seed, epoch))


def open_splits(
    name: str,
    batch_size: int,
    seed: int,
    *,
    validation_size: int | None = None,
    augment: bool | None = None,
    standardize: bool = False,
    data_dir=None,
    limit: int | None = None,
    **synthetic_options,
) -> Splits:
    """The dataset `name` as `Splits`; options as in `load_splits`."""
    check_name(name)
    if isinstance(batch_size, bool) or int(batch_size) != batch_size or batch_size < 1:
        raise HarnessError(f"batch_size must be a positive integer, got {batch_size!r}")
    info, arrays = _read(name, data_dir, limit, synthetic_options)
    train_images, train_labels = arrays["train"]
    _, validation_size = info.split_sizes(validation_size, limit, available=len(train_images))
    train_idx, val_idx = carve_validation(len(train_images), validation_size, seed)
    scale = _scaler(train_images[train_idx], standardize)
    validation = (
        _pipeline(train_images[val_idx], train_labels[val_idx], batch_size, scale=scale)
        if len(val_idx)
        else None
    )
    return Splits(
        info=info,
        batch_size=int(batch_size),
        seed=seed,
        validation=validation,
        test=_pipeline(*arrays["test"], batch_size, scale=scale),
        _train_arrays=(train_images[train_idx], train_labels[train_idx]),
        _scale=scale,
        _augment=info.augments_by_default if augment is None else bool(augment),
    )


def _train_all_epochs(splits: Splits) -> tf.data.Dataset:
    """One pipeline for every epoch: reshuffled (and re-augmented) at each iteration."""
    return _pipeline(*splits._train_arrays, splits.batch_size, scale=splits._scale, train=True,
                     augment=splits._augment, seed=splits.seed)


def load_splits(
    name: str, batch_size: int, seed: int, **options
) -> tuple[tf.data.Dataset, tf.data.Dataset | None, tf.data.Dataset]:
    """(train, validation, test) batched datasets of (float32 image, int64 label), decoded once.

    Keyword options:
    - `validation_size`: examples carved from the training split by `seed` (None: 5000, or a
      tenth of the training examples for `synthetic` and whenever `limit` is set; 0: no
      validation split, returned as None). The test split is never used for selection.
    - `augment`: None is the dataset's default (CIFAR: pad-4 + random crop + flip; others: none);
      only the train split is ever augmented.
    - `standardize`: per-channel standardisation with the training images' statistics.
    - `data_dir`: tfds data dir (None: tfds' default, which honours TFDS_DATA_DIR).
    - `limit`: read only the first `limit` examples of the source train and test splits; the
      validation split is carved from those.
    - `shape`, `num_classes`, `train_size`, `test_size`: the `synthetic` dataset's options.

    Raises HarnessError at once when a tfds dataset is not prepared (see `prepare`).
    """
    splits = open_splits(name, batch_size, seed, **options)
    return _train_all_epochs(splits), splits.validation, splits.test


def load_dataset(name: str, split: str, batch_size: int, seed: int, **options) -> tf.data.Dataset:
    """One split ("train", "validation" or "test") of `name`; options as in `load_splits`."""
    if split not in SPLITS:
        raise HarnessError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
    splits = open_splits(name, batch_size, seed, **options)
    dataset = {"train": _train_all_epochs, "validation": lambda s: s.validation,
               "test": lambda s: s.test}[split](splits)
    if dataset is None:
        raise HarnessError("validation_size is 0: there is no validation split")
    return dataset
