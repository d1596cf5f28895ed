"""`harness demo`: the quick-start job. Trains one small deep dense net with Adam and with L-Adam
(same seed, so same initial weights and data order) and prints both test accuracies."""

from __future__ import annotations

import argparse


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="train a small deep net with Adam and with L-Adam and print both accuracies",
        description=__doc__,
    )
    parser.add_argument("--depth", type=int, default=20, help="hidden Dense layers (default 20)")
    parser.add_argument("--epochs", type=int, default=3, help="epochs (default 3)")
    parser.add_argument("--seed", type=int, default=0, help="seed of weights, data and noise")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import keras
    import numpy as np

    from harness.optimizers import LAdam

    rng = np.random.default_rng(1234)
    centers = rng.normal(size=(10, 64)).astype("float32")
    labels = rng.integers(0, 10, 6000)
    images = centers[labels] + 2.0 * rng.normal(size=(6000, 64)).astype("float32")
    train, test = slice(0, 5000), slice(5000, None)

    for name, sigma in [("Adam", 0.0), ("L-Adam", 1e-3)]:
        keras.utils.set_random_seed(args.seed)
        model = keras.Sequential(
            [keras.Input((64,))]
            + [keras.layers.Dense(64, activation="relu") for _ in range(args.depth)]
            + [keras.layers.Dense(10)]
        )
        model.compile(
            optimizer=LAdam(learning_rate=1e-3, sigma=sigma, seed=args.seed),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            metrics=["accuracy"],
        )
        model.fit(images[train], labels[train], batch_size=128, epochs=args.epochs, verbose=0)
        _, accuracy = model.evaluate(images[test], labels[test], verbose=0)
        print(f"{name:7s} depth {args.depth}: test accuracy {accuracy:.4f}")
    return 0
