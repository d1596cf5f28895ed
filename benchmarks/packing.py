"""Packed trials: trials per hour of packs of K against one trial at a time, per model family.

The setting: per family (`--families`, default the three packable ones: dense, conv_dense,
highway) the net of depth 20 (`--depth`) and width 64 (conv_dense: its 32 filters), batch 512,
MNIST (real MNIST when it is prepared in tfds' data dir, else `synthetic` of shape [28, 28, 1];
`--limit` caps the examples of both splits so that a run takes minutes), a few epochs per trial.
The trials are those of a search space of Adam at two learning rates, each plain (σ = 0) and
Langevin (σ > 0), over seeds, taken round-robin over the four optimizers so that any K
consecutive trials mix seeds, learning rates and σ; a pack of K is the first pack
`packs.pack_configs` makes of them.

Each variant runs the real trainable in this process, driven as Tune's trial actors drive it
(`tests/trainable_helpers.run_in_this_process`: Ray's own function-trainable wrapper,
`tune.report` and checkpoints persisted to a real `StorageContext` under a temporary directory): the unpacked trial is `trial.train_trial`, a pack
`pack_trial.train_pack` over its K member configs. A trial's cost is everything the trainable
does (data open, model build, tracing, epochs, validation, test, reports, checkpoints), from the
trainable's creation to its stop:

    trials per hour = 3600 × trials trained / wall seconds,

with trials trained = `--baseline-trials` one after the other for the unpacked row, K for a
pack. The variants of every family run in interleaved rounds (order rotated each round) so
background load hits them alike; per round,

    speedup_K = trials per hour of the pack of K / trials per hour of the family's unpacked trials,

both measured in that round; the table gives the median over rounds and the spread (min-max),
and the same ratio by the process's CPU time (steadier on a machine shared with other jobs).
The unpacked trials are the row k = 1; a pack of one member (the packed code path alone,
without the gain of packing) is measured too and reported apart as "pack of 1".
TensorFlow's thread pools are pinned (`--threads`, default 1: a study runs one trial per CPU).
One warm-up round (an unpacked trial and a pack of 1, not timed) first: this process' TensorFlow
start and the per-process read of the dataset, which a study's worker pays once, are not
counted against any variant.

    python benchmarks/packing.py [--families dense,conv_dense,highway] [--ks 1,4,8,16]
        [--epochs 3] [--limit 10000] [--repeats 3] [--baseline-trials 4] [--dataset auto]
        [--jit-compile auto] [--pack-modes auto] [--threads 1] [--json PATH]

`--pack-modes graph,xla` measures every pack twice, its step in graph mode and under XLA
(rows "pack of K (graph)", "pack of K (xla)"), interleaved like the rest.

`--json PATH` writes {"rows": [{"family", "name", "k", "mode", "trials_per_hour", "speedup",
"speedup_min", "speedup_max", "speedup_cpu", "seconds_per_trial", "trials"}, ...] (k = 1: the
family's unpacked trials, its baseline), "pack_of_1": [the same fields, one per family],
"rounds": [...], "setup": {...}}.
Targets: speedup ≥ 1.5 at K = 8 on a CPU (dense, conv_dense, highway), ≥ 10 at K = 32 on a GPU.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))  # trainable_helpers
import plain_keras  # noqa: E402

UNPACKED = "unpacked"
PACK_OF_1 = "pack of 1"
OPTIMIZERS = [{"base": "adam", "learning_rate": lr, "sigma": sigma,
               "name": f"{'L-' if sigma else ''}Adam-lr{lr:g}"}
              for lr in (1e-3, 3e-3) for sigma in (0.0, 1e-3)]


def _dataset(choice: str) -> dict:
    """MNIST when prepared (or asked for), else synthetic data of MNIST's shape."""
    if choice == "auto":
        from harness.data.tfds_source import builder

        choice = "mnist" if builder("mnist").is_prepared() else "synthetic"
    if choice == "mnist":
        return {"name": "mnist"}
    return {"name": "synthetic", "options": {"shape": [28, 28, 1], "train_size": 60000,
                                             "test_size": 10000}}


def _space(args, family: str, members: int) -> dict:
    return {
        "name": f"packing-benchmark-{family}",
        "dataset": {**_dataset(args.dataset), "batch_size": args.batch_size,
                    "limit": args.limit or None},
        "model": {"family": family, "depths": [args.depth], "options": {"width": args.width}},
        "optimizers": OPTIMIZERS,
        "seeds": -(-members // len(OPTIMIZERS)),
        "epochs": args.epochs,
        "jit_compile": {"auto": "auto", "true": True, "false": False}[args.jit_compile],
        "max_failures": 0,
    }


def study_trials(args, family: str, members: int) -> list[dict]:
    """The family's study's trial configs, round-robin over the optimizers (seed by seed)."""
    from harness.study.space import parse_space, trial_configs

    configs = trial_configs(parse_space(_space(args, family, members), Path("benchmark")))
    names = [o["name"] for o in OPTIMIZERS]
    return sorted(configs, key=lambda c: (c["seed"], names.index(c["optimizer"])))


def run_trainable(config: dict, storage: str, name: str) -> tuple[float, float]:
    """(wall s, CPU s) of one trial's or pack's trainable run to its end as Tune's worker runs
    it (the tests' driver: `train()` per report, `save()` of each checkpoint); every trial it
    trains must have reported every epoch and finished."""
    from trainable_helpers import run_in_this_process

    from harness.study.packs import member_configs, member_results

    wall, cpu = time.perf_counter(), time.process_time()
    results = run_in_this_process(config, Path(storage), name).results
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    epochs = member_configs(config)[0]["epochs"]
    ended = [r.get("status") for _, r in member_results(config, results[-1])]
    if [r["epoch"] for r in results] != list(range(1, epochs + 1)) or \
            ended != ["finished"] * len(member_configs(config)):
        raise RuntimeError(f"{name}: reported epochs {[r['epoch'] for r in results]} (not "
                           f"1..{epochs}) or ended {ended}, not every trial finished")
    return wall, cpu


def variant(family: str, name: str) -> str:
    return f"{family}: {name}"


def _variants(args) -> dict:
    """{"family: name": ([Tune configs], trials they train)}: per family the unpacked trials
    (`train_trial`), the packs (`train_pack`)."""
    from harness.study.packs import pack_configs

    variants = {}
    for family in args.families:
        configs = study_trials(args, family, max(args.ks + [args.baseline_trials]))
        variants[variant(family, UNPACKED)] = (configs[:args.baseline_trials],
                                               args.baseline_trials)
        variants[variant(family, PACK_OF_1)] = (pack_configs(configs[:1], 1), 1)
        for k in args.ks:
            if k > 1:
                (pack,) = pack_configs(configs[:k], k)  # all compatible: one pack of K
                for mode in args.pack_modes:
                    variants[variant(family, pack_name(k, mode))] = ([in_mode(pack, mode)], k)
    return variants


def pack_name(k: int, mode: str) -> str:
    return f"pack of {k}" + ("" if mode == "auto" else f" ({mode})")


def in_mode(pack: dict, mode: str) -> dict:
    """The pack with its step in graph mode or under XLA (`auto`: as the study says)."""
    if mode == "auto":
        return pack
    return {**pack, "members": [{**m, "jit_compile": mode == "xla"} for m in pack["members"]]}


def one_round(variants: dict, order: list[str], storage: str, label: str) -> dict:
    """Every variant once, in `order`: {name: {"wall_s", "cpu_s"}}."""
    times = {}
    for name in order:
        runs = [run_trainable(c, storage, f"{label}-{name.replace(' ', '').replace(':', '-')}-{i}")
                for i, c in enumerate(variants[name][0])]
        times[name] = {"wall_s": sum(w for w, _ in runs), "cpu_s": sum(c for _, c in runs)}
        print(f"  {label} {name}: {times[name]['wall_s']:.1f} s", flush=True)
    return times


def summarise(variants: dict, rounds: list[dict], family: str, name: str) -> dict:
    """Median trials per hour of one variant and its speedup over its family's unpacked trials,
    per round ratio (median, min, max; also by CPU time)."""
    trials = variants[variant(family, name)][1]
    base = variants[variant(family, UNPACKED)][1]
    ours = [r[variant(family, name)] for r in rounds]
    theirs = [r[variant(family, UNPACKED)] for r in rounds]
    wall = [trials / r["wall_s"] for r in ours]
    speedups = [trials / r["wall_s"] / (base / u["wall_s"]) for r, u in zip(ours, theirs)]
    cpu = [trials / r["cpu_s"] / (base / u["cpu_s"]) for r, u in zip(ours, theirs)]
    pack = re.fullmatch(r"pack of (\d+)(?: \((graph|xla)\))?", name)
    return {"family": family, "name": name,
            "k": 1 if name in (UNPACKED, PACK_OF_1) else int(pack.group(1)),
            "mode": (pack.group(2) if pack and pack.group(2) else "auto"),
            "trials": trials, "trials_per_hour": 3600 * statistics.median(wall),
            "seconds_per_trial": 1 / statistics.median(wall),
            "speedup": statistics.median(speedups), "speedup_min": min(speedups),
            "speedup_max": max(speedups), "speedup_cpu": statistics.median(cpu)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--families", default="dense,conv_dense,highway",
                        help="model families, comma-separated (default dense,conv_dense,highway)")
    parser.add_argument("--ks", default=None,
                        help="pack sizes, comma-separated (default 1,4,8,16, and 32 when a GPU "
                             "is visible); 1 is the unpacked trial, always measured")
    parser.add_argument("--epochs", type=int, default=3, help="epochs per trial (default 3)")
    parser.add_argument("--limit", type=int, default=10000,
                        help="first N examples of the train and test splits (validation: a "
                             "tenth of the train ones); 0: all; default 10000")
    parser.add_argument("--depth", type=int, default=20, help="every family's depth (default 20)")
    parser.add_argument("--width", type=int, default=64,
                        help="dense and highway layers' width (default 64)")
    parser.add_argument("--batch-size", type=int, default=512, help="per trial (default 512)")
    parser.add_argument("--dataset", choices=("auto", "mnist", "synthetic"), default="auto",
                        help="auto: MNIST when prepared in tfds' data dir, else synthetic")
    parser.add_argument("--baseline-trials", type=int, default=len(OPTIMIZERS),
                        help="unpacked trials per round (default 4: one per optimizer)")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved rounds (default 3)")
    parser.add_argument("--jit-compile", choices=("auto", "true", "false"), default="auto",
                        help="the study's jit_compile (auto, a study's default: graph mode for "
                             "the unpacked trial on a CPU, XLA for a pack but for a conv_dense "
                             "pack on a CPU)")
    parser.add_argument("--pack-modes", default="auto",
                        help="the packs' step: auto (as jit_compile says), graph, xla; "
                             "comma-separated for a row per mode (default auto)")
    parser.add_argument("--threads", type=int, default=1, help="TF intra/inter-op threads (default 1)")
    parser.add_argument("--json", metavar="PATH", help="write the rows there as JSON")
    args = parser.parse_args()
    plain_keras.pin_threads(args.threads)

    # isort: off
    import harness  # noqa: F401  (quiets TensorFlow: before it is imported)
    import keras
    import ray
    import tensorflow as tf

    # isort: on

    tf.get_logger().setLevel("ERROR")  # the table, not TensorFlow's retracing notes
    gpu = bool(tf.config.list_physical_devices("GPU"))
    ks = args.ks or ("1,4,8,16,32" if gpu else "1,4,8,16")
    args.ks = sorted({int(k) for k in ks.split(",")} | {1})
    args.families = args.families.split(",")
    args.pack_modes = args.pack_modes.split(",")
    if not set(args.pack_modes) <= {"auto", "graph", "xla"}:
        parser.error("--pack-modes: allowed auto, graph, xla (comma-separated)")
    if args.ks[0] < 1 or min(args.baseline_trials, args.repeats, args.threads) < 1 or \
            args.limit < 0:
        parser.error("--ks, --baseline-trials, --repeats and --threads take integers >= 1, "
                     "--limit one >= 0")
    ray.init(address="local", num_cpus=1, include_dashboard=False, log_to_driver=False)
    logging.getLogger("ray.train").setLevel(logging.WARNING)  # nor a line per checkpoint
    variants = _variants(args)
    names = list(variants)
    first = variants[variant(args.families[0], UNPACKED)][0][0]
    warm_up = [variant(f, n) for f in args.families for n in (UNPACKED, PACK_OF_1)]
    with tempfile.TemporaryDirectory() as storage:
        one_round({n: (variants[n][0][:1], 1) for n in warm_up}, warm_up, storage, "warm-up")
        rounds = [one_round(variants, names[r % len(names):] + names[:r % len(names)], storage,
                            f"round {r + 1}") for r in range(args.repeats)]
    ray.shutdown()

    rows = [summarise(variants, rounds, f, n.split(": ", 1)[1]) for f in args.families
            for n in names if n.startswith(f"{f}: ") and not n.endswith(PACK_OF_1)]
    pack_of_1 = [summarise(variants, rounds, f, PACK_OF_1) for f in args.families]
    setup = {"dataset": first["dataset"], "limit": args.limit, "families": args.families,
             "depth": args.depth, "width": args.width, "batch_size": args.batch_size,
             "epochs": args.epochs, "repeats": args.repeats,
             "baseline_trials": args.baseline_trials, "threads": args.threads,
             "jit_compile": first["jit_compile"], "optimizers": OPTIMIZERS,
             "devices": [d.name for d in tf.config.list_physical_devices()],
             "tensorflow": tf.__version__, "keras": keras.__version__}
    print(f"\n{', '.join(args.families)} of depth {args.depth} (width {args.width}), "
          f"{first['dataset']} (limit {args.limit}), batch {args.batch_size}, {args.epochs} "
          f"epochs per trial; {args.threads} TF thread(s); median [min, max] of {args.repeats} "
          "interleaved rounds")
    print("speedup = trials/hour ÷ trials/hour of the family's unpacked trials of the same round")
    print(f"{'':24s}{'trials/hour':>12s}{'s/trial':>9s}{'speedup':>9s}  {'[min, max]':14s}"
          f"{'by CPU':>7s}")
    for family, ones in zip(args.families, pack_of_1, strict=True):
        ours = [r for r in rows if r["family"] == family]
        for row in [ours[0], ones, *ours[1:]]:
            print(f"{variant(family, row['name']):24s}{row['trials_per_hour']:12.0f}"
                  f"{row['seconds_per_trial']:9.2f}{row['speedup']:9.2f}  "
                  f"[{row['speedup_min']:.2f}, {row['speedup_max']:.2f}]{row['speedup_cpu']:9.2f}")
    if args.json:
        Path(args.json).write_text(json.dumps(
            {"rows": rows, "pack_of_1": pack_of_1, "rounds": rounds, "setup": setup}, indent=2))

if __name__ == "__main__":
    main()
