"""Whether a pack's training step is XLA-compiled: graph mode or XLA, by measurement.

Answers from the study's settings and the device kind alone (no TensorFlow), so the dry run
prints the same choice the pack makes when it starts.
"""

from __future__ import annotations

# Whole packed trials on the 2-core CPU, graph mode against XLA (benchmarks/packing.py
# --pack-modes graph,xla; dense-20, width 64, batch 512, 3 epochs with validation, test and
# checkpoints; benchmarks/README.md): seconds per pack of K at MEASURED_STEPS training steps.
MEASURED_STEPS = (54, 318)
CPU_PACK_SECONDS = {"dense": {8: {"graph": (11.55, 35.1), "xla": (13.7, 30.8)},
                              16: {"graph": (18.05, 61.4), "xla": (20.2, 48.9)},
                              32: {"graph": (34.85, 130.0), "xla": (34.4, 139.9)}}}


def xla_compiles(family: str, members: int, jit_compile, steps: int,
                 on_gpu: bool) -> tuple[bool, str]:
    """(whether a pack of `members` of `family` steps under XLA, why) for a trial of `steps`
    training steps.

    `jit_compile` true or false: as the study says. Under `auto`: yes on a GPU; on a CPU where
    the measured whole-pack times say XLA finishes such a trial sooner. Each mode's time is the
    line through its two measurements (`CPU_PACK_SECONDS`, the pack size nearest K):

        t(steps) = t_1 + (t_2 − t_1) · (steps − s_1) / (s_2 − s_1),

    XLA where t_XLA(steps) < t_graph(steps): its faster step has repaid its longer compiles
    (train and evaluation steps, full and last batch). Dense packs of 8 cross at about 140 steps,
    of 16 at about 90; highway packs stepped slower under XLA and conv + dense packs far slower
    (XLA:CPU's grouped convolution: 50x TensorFlow's time), so they are never compiled on a CPU.
    """
    if isinstance(jit_compile, bool):
        return jit_compile, "jit_compile set in the study"
    if on_gpu:
        return True, "jit_compile auto on a GPU"
    measured = CPU_PACK_SECONDS.get(family)
    if not measured:
        return False, (f"jit_compile auto: {family} packs step slower under XLA on a CPU "
                       "(benchmarks/README.md)")
    nearest = min(measured, key=lambda size: (abs(size - members), size))
    (s1, s2), times = MEASURED_STEPS, measured[nearest]

    def at(mode: str) -> float:
        t1, t2 = times[mode]
        return t1 + (t2 - t1) * (steps - s1) / (s2 - s1)

    pays = at("xla") < at("graph")
    return pays, (f"jit_compile auto: a {family} pack of {nearest} on a CPU took "
                  f"{times['graph'][0]:g} s in graph mode and {times['xla'][0]:g} s under XLA at "
                  f"{s1} steps, {times['graph'][1]:g} s and {times['xla'][1]:g} s at {s2}: at "
                  f"this trial's {steps} steps {'XLA' if pays else 'graph mode'} is faster")
