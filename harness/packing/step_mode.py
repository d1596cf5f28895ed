"""Whether a pack's training step is XLA-compiled: graph mode or XLA, by measurement.

Answers from the study's settings and the device kind alone (no TensorFlow), so the dry run
prints the same choice the pack makes when it starts.
"""

from __future__ import annotations

from harness.packing.cpu_seconds import CPU_SECONDS, MEASURED_STEPS, seconds_at


def xla_compiles(family: str, members: int, jit_compile, steps: int,
                 on_gpu: bool) -> tuple[bool, str]:
    """(whether a pack of `members` of `family` steps under XLA, why) for a trial of `steps`
    training steps.

    `jit_compile` true or false: as the study says. Under `auto`: yes on a GPU; on a CPU where
    the measured whole-pack times say XLA finishes such a trial sooner. Each mode's time is the
    line through its two measurements (`cpu_seconds`, the pack size nearest K measured in both),
    XLA where t_XLA(steps) < t_graph(steps): its faster step has repaid its longer compiles
    (train and evaluation steps, full and last batch). Dense packs of 8 cross at about 140 steps,
    of 16 at about 90; highway packs stepped slower under XLA and conv + dense packs far slower
    (XLA:CPU's grouped convolution: 50x TensorFlow's time), so they are never compiled on a CPU.
    """
    if isinstance(jit_compile, bool):
        return jit_compile, "jit_compile set in the study"
    if on_gpu:
        return True, "jit_compile auto on a GPU"
    measured = {size: times for size, times in CPU_SECONDS.get(family, {}).items()
                if "xla" in times}
    if not measured:
        return False, (f"jit_compile auto: {family} packs step slower under XLA on a CPU "
                       "(benchmarks/README.md)")
    nearest = min(measured, key=lambda size: (abs(size - members), size))
    (s1, s2), times = MEASURED_STEPS, measured[nearest]

    def at(mode: str) -> float:
        return seconds_at(times[mode], steps)

    pays = at("xla") < at("graph")
    return pays, (f"jit_compile auto: a {family} pack of {nearest} on a CPU took "
                  f"{times['graph'][0]:g} s in graph mode and {times['xla'][0]:g} s under XLA at "
                  f"{s1} steps, {times['graph'][1]:g} s and {times['xla'][1]:g} s at {s2}: at "
                  f"this trial's {steps} steps {'XLA' if pays else 'graph mode'} is faster")
