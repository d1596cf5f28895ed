"""A learnable synthetic image dataset of any shape, for smoke runs and tests (no files).

Each class c has a fixed template T_c ~ N(0, 1) per pixel; an image of class c is

    x = clip(128 + 40·T_c + 60·ε, 0, 255) as uint8,   ε ~ N(0, 1) per pixel,

so the per-pixel signal-to-noise ratio is 2/3 and a small dense net separates the classes well
above chance within an epoch or two. Everything is drawn from the fixed `DATA_SEED`: the same
options always give the same images; labels are balanced (cycled through the classes, then
permuted). Train and test images share the templates and differ only in their noise.
"""

from __future__ import annotations

import numpy as np

from harness.data.catalog import DatasetInfo

DATA_SEED = 20240611


def make_arrays(info: DatasetInfo) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{"train": (images, labels), "test": (images, labels)}, images uint8 of `info.input_shape`."""
    rng = np.random.default_rng(DATA_SEED)
    templates = rng.standard_normal((info.num_classes, *info.input_shape), dtype=np.float32)
    arrays = {}
    for split, size in (("train", info.train_size), ("test", info.test_size)):
        labels = rng.permutation(np.arange(size) % info.num_classes).astype(np.int64)
        noise = rng.standard_normal((size, *info.input_shape), dtype=np.float32)
        images = np.clip(128.0 + 40.0 * templates[labels] + 60.0 * noise, 0, 255)
        arrays[split] = (images.astype(np.uint8), labels)
    return arrays
