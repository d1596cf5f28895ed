"""Cost of the Langevin noise: time of one training step of L-Adam (σ > 0) against its plain step.

For each model and mode (graph; XLA = `jit_compile=True`) it compiles three copies of the same
model (same initial weights): Keras Adam, L-Adam with σ = 0 (the plain arm) and L-Adam with σ > 0.
It then times their Keras train functions on one fixed batch in interleaved rounds: every round
runs `--steps` steps of each variant, in an order rotated from round to round, so background load
hits all of them alike. Per round it forms the ratio σ>0 / σ=0 (and σ>0 / Keras Adam); the table
gives the median over rounds with the quartiles as spread. TensorFlow's thread pools are pinned
(`--intra-threads`, `--inter-threads`) before anything runs.

Two clocks: the process's CPU time (what the step costs: on a machine shared with other jobs,
time spent waiting for a core is not counted; work moved to another thread is) and wall time.
`ratio` is by CPU time, `ratio_wall` by wall time; on an idle machine with one thread they agree.

    python benchmarks/optimizer_overhead.py [--models dense-40,resnet-20] [--rounds 30]
        [--steps 5] [--json PATH]

`--json PATH` writes {"rows": [{"model", "mode", "ratio", "ratio_q1", "ratio_q3", "ratio_wall",
"ratio_vs_keras", "ms_per_step": {variant: median CPU ms}}, ...], "setup": {...}}.
Target (issue 13): ratio ≤ 1.05 on dense-40 in both modes.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

MODELS = {
    "dense-40": dict(name="dense", depth=40, input_shape=(28, 28, 1), batch=512),
    "resnet-20": dict(name="resnet", depth=20, input_shape=(32, 32, 3), batch=128),
}
MODES = {"graph": False, "xla": True}
PLAIN, NOISY, KERAS = "L-Adam σ=0", "L-Adam σ=1e-3", "Adam (Keras)"


def _variants():
    import keras

    from harness.optimizers import LAdam

    return {
        KERAS: lambda: keras.optimizers.Adam(5e-3, epsilon=1e-6),
        PLAIN: lambda: LAdam(5e-3, sigma=0.0, seed=0),
        NOISY: lambda: LAdam(5e-3, sigma=1e-3, seed=0),
    }


def _train_function(net: dict, make_optimizer, jit: bool):
    """A compiled model's one-step train function and an iterator over one fixed batch."""
    import keras
    import tensorflow as tf

    from harness.models import build_model

    keras.utils.set_random_seed(0)
    model = build_model(net["name"], depth=net["depth"], input_shape=net["input_shape"],
                        num_classes=10)
    model.compile(optimizer=make_optimizer(),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  jit_compile=jit)
    rng = np.random.default_rng(0)
    x = rng.random((net["batch"], *net["input_shape"]), dtype=np.float32)
    y = rng.integers(0, 10, net["batch"])
    iterator = iter(tf.data.Dataset.from_tensors((x, y)).repeat())
    model.make_train_function()

    def run(steps: int) -> tuple[float, float]:
        """CPU and wall seconds per step over `steps` steps (the last loss read back)."""
        cpu, wall = time.process_time(), time.perf_counter()
        for _ in range(steps):
            outputs = model.train_function(iterator)
        float(outputs["loss"])
        return (time.process_time() - cpu) / steps, (time.perf_counter() - wall) / steps

    run(3)  # trace, compile and warm up outside the timing
    return run


def measure(net: dict, jit: bool, rounds: int, steps: int) -> dict:
    """Interleaved rounds of all variants: per-variant step times and per-round ratios."""
    runners = {name: _train_function(net, make, jit) for name, make in _variants().items()}
    names = list(runners)
    times = {name: [] for name in names}
    for r in range(rounds):
        order = names[r % len(names):] + names[: r % len(names)]
        for name in order:
            times[name].append(runners[name](steps))
    cpu = {name: np.array(v)[:, 0] for name, v in times.items()}
    wall = {name: np.array(v)[:, 1] for name, v in times.items()}
    q1, median, q3 = np.percentile(cpu[NOISY] / cpu[PLAIN], [25, 50, 75])
    return {
        "ratio": float(median),
        "ratio_q1": float(q1),
        "ratio_q3": float(q3),
        "ratio_wall": float(np.median(wall[NOISY] / wall[PLAIN])),
        "ratio_vs_keras": float(np.median(cpu[NOISY] / cpu[KERAS])),
        "ms_per_step": {name: float(np.median(v) * 1e3) for name, v in cpu.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="dense-40",
                        help=f"comma-separated, from {', '.join(MODELS)} (default dense-40)")
    parser.add_argument("--modes", default="graph,xla", help="comma-separated: graph, xla")
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--steps", type=int, default=5, help="steps per variant per round")
    parser.add_argument("--intra-threads", type=int, default=1)
    parser.add_argument("--inter-threads", type=int, default=1)
    parser.add_argument("--json", metavar="PATH", help="write the rows there as JSON")
    args = parser.parse_args()
    models = args.models.split(",")
    modes = args.modes.split(",")
    for value, allowed, flag in [(models, MODELS, "--models"), (modes, MODES, "--modes")]:
        unknown = sorted(set(value) - set(allowed))
        if unknown:
            parser.error(f"{flag}: unknown {unknown}; allowed: {', '.join(allowed)}")

    # isort: off
    import harness  # noqa: F401  (quiets TensorFlow: before it is imported)
    import tensorflow as tf

    # isort: on

    tf.config.threading.set_intra_op_parallelism_threads(args.intra_threads)
    tf.config.threading.set_inter_op_parallelism_threads(args.inter_threads)
    import keras

    rows = []
    for model in models:
        for mode in modes:
            row = {"model": model, "mode": mode}
            row.update(measure(MODELS[model], MODES[mode], args.rounds, args.steps))
            rows.append(row)
            print(f"done {model} {mode}", flush=True)

    print("\nCPU ms per step (median) and ratios (median over rounds [quartiles]; wall: wall time)")
    print(f"{'model':10s} {'mode':5s} " + " ".join(f"{v:>14s}" for v in _variants())
          + f" {'σ>0 / σ=0 [q1, q3]':>22s} {'wall':>6s} {'σ>0 / Keras':>11s}")
    for row in rows:
        ms = " ".join(f"{row['ms_per_step'][v]:11.2f} ms" for v in _variants())
        print(f"{row['model']:10s} {row['mode']:5s} {ms} "
              f"{row['ratio']:8.3f} [{row['ratio_q1']:.3f}, {row['ratio_q3']:.3f}]"
              f" {row['ratio_wall']:6.3f} {row['ratio_vs_keras']:11.3f}")
    setup = {
        "devices": [d.name for d in tf.config.list_physical_devices()],
        "tensorflow": tf.__version__, "keras": keras.__version__,
        "rounds": args.rounds, "steps": args.steps,
        "intra_threads": args.intra_threads, "inter_threads": args.inter_threads,
    }
    print(f"\n{setup}: median over rounds of the per-round ratio, quartiles in brackets")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"rows": rows, "setup": setup}, f, indent=2)


if __name__ == "__main__":
    main()
