"""Is training ever input-bound? Input pipeline images/s against training-step images/s.

Measures, on this machine:
- the CIFAR-style training pipeline (pad-4 + random crop + flip, shuffle, batch, scale) and the
  MNIST-style one (shuffle, batch, scale), both built by `harness.data.load_dataset` on the
  `synthetic` dataset with the real image shapes (32×32×3 and 28×28×1), one full epoch each;
- the images/s a ResNet-20 (CIFAR-10) and a dense-40 (MNIST) Keras training step consumes
  (`model.fit` on one batch held in memory, after a warm-up that traces the step).

It prints one table row per pairing with the ratio pipeline / model; the target is ≥ 5, so
that the pipeline never starves the model. Run: `python benchmarks/input_pipeline.py`.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import harness  # noqa: F401  (quiets TensorFlow's start-up logging)


def pipeline_throughput(shape, augment, batch_size, examples, epochs=2):
    """Images/s of the training pipeline over `epochs` full passes (the first fills the shuffle
    buffer and traces the maps; both count)."""
    from harness.data import load_dataset

    train = load_dataset(
        "synthetic",
        "train",
        batch_size,
        seed=0,
        augment=augment,
        validation_size=0,
        shape=shape,
        train_size=examples,
        test_size=1,
    )
    start, seen = time.perf_counter(), 0
    for _ in range(epochs):
        for images, _ in train:
            seen += int(images.shape[0])
    return seen / (time.perf_counter() - start)


def model_throughput(family, depth, shape, batch_size, steps):
    """Images/s of `steps` training steps (Adam, sparse cross-entropy) on one in-memory batch."""
    import keras
    import tensorflow as tf

    from harness.models import build_model

    model = build_model(family, depth, shape, 10)
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    rng = np.random.default_rng(0)
    batch = (rng.random((batch_size, *shape), np.float32), rng.integers(0, 10, batch_size))
    data = tf.data.Dataset.from_tensors(batch)
    model.fit(data.repeat(3), epochs=1, verbose=0, shuffle=False)  # trace and warm up
    start = time.perf_counter()
    model.fit(data.repeat(steps), epochs=1, verbose=0, shuffle=False)
    return steps * batch_size / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--examples", type=int, default=20000, help="pipeline epoch size")
    parser.add_argument("--steps", type=int, default=30, help="timed training steps per model")
    args = parser.parse_args()

    rows = [
        ("CIFAR augmented", (32, 32, 3), True, "ResNet-20", ("resnet", 20)),
        ("MNIST", (28, 28, 1), False, "dense-40", ("dense", 40)),
    ]
    print(f"batch size {args.batch_size}; images/s on this machine\n")
    print(
        f"| {'pipeline':<16} | {'pipeline img/s':>14} | {'model':<9} | {'model img/s':>11} | {'ratio':>6} |"
    )
    print(f"|{'-' * 18}|{'-' * 16}|{'-' * 11}|{'-' * 13}|{'-' * 8}|")
    for label, shape, augment, model_label, (family, depth) in rows:
        fed = pipeline_throughput(shape, augment, args.batch_size, args.examples)
        consumed = model_throughput(family, depth, shape, args.batch_size, args.steps)
        print(
            f"| {label:<16} | {fed:>14,.0f} | {model_label:<9} | {consumed:>11,.0f} "
            f"| {fed / consumed:>5.1f}x |"
        )


if __name__ == "__main__":
    main()
