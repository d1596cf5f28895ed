"""Cost of the Langevin noise: time per training step of L-Adam vs Adam, measured in one run.

For a 40-layer dense net (MNIST shapes) and a ResNet-20 (CIFAR shapes), graph mode and XLA, it
times `model.fit` steps with Keras Adam, L-Adam with σ = 0 (our baseline) and L-Adam with σ > 0.
Variants are timed in interleaved rounds (A B C A B C ...) and the median per-step time is kept,
so background load hits all of them alike. Target: L-Adam step / Adam step ≤ 1.10 on CPU.

    python benchmarks/optimizer_overhead.py [--rounds 5] [--steps 10]
"""

from __future__ import annotations

import argparse
import statistics
import time

import keras
import numpy as np
import tensorflow as tf

import harness  # noqa: F401  (quiets TensorFlow)
from harness.models import build_model
from harness.optimizers import LAdam

NETS = {
    "dense-40 (MNIST)": dict(name="dense", depth=40, input_shape=(28, 28, 1), batch=512),
    "ResNet-20 (CIFAR)": dict(name="resnet", depth=20, input_shape=(32, 32, 3), batch=128),
}
VARIANTS = {
    "Adam (Keras)": lambda: keras.optimizers.Adam(5e-3, epsilon=1e-6),
    "L-Adam σ=0": lambda: LAdam(5e-3, sigma=0.0, seed=0),
    "L-Adam σ=1e-3": lambda: LAdam(5e-3, sigma=1e-3, seed=0),
}


def _compiled(net: dict, make_optimizer, jit: bool) -> keras.Model:
    keras.utils.set_random_seed(0)
    model = build_model(net["name"], depth=net["depth"], input_shape=net["input_shape"],
                        num_classes=10)
    model.compile(optimizer=make_optimizer(),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  jit_compile=jit)
    return model


def _seconds_per_step(model, data, steps: int) -> float:
    start = time.perf_counter()
    model.fit(data, epochs=1, steps_per_epoch=steps, verbose=0)
    return (time.perf_counter() - start) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=10)
    args = parser.parse_args()

    rows = []
    for net_name, net in NETS.items():
        rng = np.random.default_rng(0)
        x = rng.random((net["batch"], *net["input_shape"]), dtype=np.float32)
        y = rng.integers(0, 10, net["batch"])
        data = tf.data.Dataset.from_tensors((x, y)).repeat().prefetch(2)
        for mode, jit in [("graph", False), ("XLA", True)]:
            models = {v: _compiled(net, make, jit) for v, make in VARIANTS.items()}
            for model in models.values():  # trace and compile outside the timing
                _seconds_per_step(model, data, 2)
            times = {v: [] for v in VARIANTS}
            for _ in range(args.rounds):
                for variant, model in models.items():
                    times[variant].append(_seconds_per_step(model, data, args.steps))
            median = {v: statistics.median(t) for v, t in times.items()}
            for variant in VARIANTS:
                rows.append((net_name, mode, variant, median[variant] * 1e3,
                             median[variant] / median["Adam (Keras)"],
                             median[variant] / median["L-Adam σ=0"]))

    print(f"\n{'net':18s} {'mode':5s} {'optimizer':14s} {'ms/step':>8s} {'÷Adam':>6s} {'÷σ=0':>6s}")
    for net_name, mode, variant, ms, vs_adam, vs_zero in rows:
        print(f"{net_name:18s} {mode:5s} {variant:14s} {ms:8.1f} {vs_adam:6.2f} {vs_zero:6.2f}")
    print(f"\n{tf.config.list_physical_devices()} | TF {tf.__version__} | Keras {keras.__version__}"
          f" | rounds {args.rounds} × {args.steps} steps, median")


if __name__ == "__main__":
    main()
