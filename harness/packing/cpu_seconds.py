"""Whole trials measured on the 2-core CPU: seconds per unpacked trial and per pack of K at two
trial lengths, and the line through them.

`benchmarks/packing.py` runs each packable family's real trainables (depth 20, width 64, batch
512, 3 epochs with validation, test and checkpoints; benchmarks/README.md) at two lengths,
`--limit 10000` (s₁ = 54 training steps) and `--limit 0` (s₂ = 318). A trial's time is a fixed
part (data open, model build, tracing, test, checkpoints) and a part per step, so

    t_K(steps) = t_K(s₁) + (t_K(s₂) − t_K(s₁)) · (steps − s₁) / (s₂ − s₁)

and a CPU trains K / t_K(steps) trials per second in packs of K. Short trials favour big packs
(the K members share the fixed part); long ones favour the faster step per member, which for
conv + dense is the unpacked trial's: its grouped convolution over K members' channels steps
slower per member than one member's convolution.

`CPU_SECONDS[family][K][mode]` = (t_K(s₁), t_K(s₂)); K = 1 is the unpacked trial (Keras, graph
mode), K > 1 a pack in graph mode or under XLA (`step_mode`).
"""

from __future__ import annotations

MEASURED_STEPS = (54, 318)
# dense: benchmarks/README.md "Graph mode or XLA" (commit 208066f); its unpacked trial's
# seconds from the same run's speed-ups, t_1 = speedup · t_K / K (K = 8 and 16 agree to 0.01 s).
# conv_dense, highway: "Trial length decides" (real MNIST; median s/trial × K).
CPU_SECONDS = {
    "dense": {1: {"graph": (5.39, 7.20)},
              8: {"graph": (11.55, 35.1), "xla": (13.7, 30.8)},
              16: {"graph": (18.05, 61.4), "xla": (20.2, 48.9)},
              32: {"graph": (34.85, 130.0), "xla": (34.4, 139.9)}},
    "conv_dense": {1: {"graph": (16.33, 49.22)}, 4: {"graph": (53.81, 222.71)},
                   8: {"graph": (112.94, 414.92)}, 16: {"graph": (178.4, 951.51)}},
    "highway": {1: {"graph": (16.85, 25.83)}, 4: {"graph": (29.39, 63.1)},
                8: {"graph": (44.45, 116.25)}, 16: {"graph": (67.94, 230.1)}},
}


def seconds_at(times: tuple[float, float], steps: int) -> float:
    """t(steps) on the line through the two measured lengths (module docstring)."""
    (s1, s2), (t1, t2) = MEASURED_STEPS, times
    return t1 + (t2 - t1) * (steps - s1) / (s2 - s1)
