"""Packing a study's trials (issue 15): which trials share a pack, and each member's own view.

A study file's `packing: K` (or `auto`) groups the trials of each Tune experiment that can train
as one packed model: the same config in everything but the fields of `MEMBER_FIELDS` (seed,
learning rate, σ and what names the trial) and `NOISE_FIELDS` (σ's schedule, the Layer Langevin
fraction). The noise fields shape only the noise term σ_t·√γ_t·ξ_t, which is 0 for a member whose
σ is 0: such a quiet member (a plain arm) trains alike under any of them, so it may share a pack
with noisy members (its Langevin twin), and the noisy members of one pack agree on them. Each
trial, in the trials' order, joins the first pack of its group with room for it and, if it is
noisy, no other noise; a pack holds at most K. A pack is one Tune trial,
{"trial_key": …, "members": [trial configs]}; every member keeps its own trial config, key and
MLflow run, as if it had run alone.

`auto` takes K = min(the largest group, K_max, what fits the memory), the memory per member
estimated by `limits.trial_bytes`. With a GPU K_max = 32. On CPUs K_max is the pack size that
trains the study's trials fastest at their length: K / t_K(steps) trials per second, t_K the
whole-trial seconds measured at two lengths (`packing.cpu_seconds`, the unpacked trial K = 1
among them), in the step mode the pack would take. Packs pay on short trials, which share their
fixed cost; on long ones the step decides: conv + dense trials as long as a study's train
faster unpacked. It says why.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter

PACK_MEMBERS = "members"
# what may differ between the members of one pack: the rest of their configs is equal
MEMBER_FIELDS = ("seed", "learning_rate", "sigma", "trial_key", "optimizer", "variant", "arm",
                 "point", "stage", "control", "control_of")
# what shapes only the noise: equal among a pack's noisy members, free for its quiet ones (σ = 0)
NOISE_FIELDS = ("sigma_schedule", "layer_fraction")
AUTO = "auto"
AUTO_MAX_GPU = 32
# on CPUs no pack above 16: K = 32 was measured once, on a loaded machine, its 318-step times
# disagreeing with its CPU times (benchmarks/README.md)
AUTO_MAX_CPU = 16
def cpu_pack_cap(family: str, steps: int, jit_compile="auto") -> tuple[int, str]:
    """(K_max, why) on CPUs for trials of `steps` training steps: the measured size up to
    AUTO_MAX_CPU (the unpacked trial, K = 1, among them) with the most trials per hour,
    3600 · K / t_K(steps), each pack in the step mode `xla_compiles` gives it."""
    from harness.packing.cpu_seconds import CPU_SECONDS, seconds_at
    from harness.packing.step_mode import xla_compiles

    measured = {k: times for k, times in CPU_SECONDS.get(family, {}).items() if k <= AUTO_MAX_CPU}
    if 1 not in measured:
        return 1, f"no CPU measurement of {family} trials (benchmarks/packing.py)"

    def per_hour(k: int) -> float:
        mode = "xla" if k > 1 and xla_compiles(family, k, jit_compile, steps, False)[0] \
            else "graph"
        return 3600 * k / seconds_at(measured[k].get(mode, measured[k]["graph"]), steps)

    best = max(measured, key=per_hour)
    table = ", ".join(f"{'unpacked' if k == 1 else k}: {per_hour(k):.0f}"
                      for k in sorted(measured))
    fastest = "unpacked" if best == 1 else f"in packs of {best}"
    return best, (f"{family} trials of {steps} steps train fastest {fastest} on a CPU "
                  f"(trials/hour from the measured times: {table}; benchmarks/README.md)")


def member_configs(config: dict) -> list[dict]:
    """The trial configs a Tune trial's config stands for: a pack's members, or itself."""
    return config[PACK_MEMBERS] if PACK_MEMBERS in config else [config]


def member_results(config: dict, result: dict) -> list[tuple[dict, dict]]:
    """(trial config, that trial's result) for every trial a Tune result reports on."""
    if PACK_MEMBERS not in config:
        return [(config, result)]
    reported = result.get(PACK_MEMBERS) or {}
    return [(m, reported[m["trial_key"]]) for m in config[PACK_MEMBERS]
            if m["trial_key"] in reported]


def _shared(config: dict) -> str:
    """What must be equal within a pack: everything but `MEMBER_FIELDS` and `NOISE_FIELDS`."""
    shared = {k: v for k, v in config.items() if k not in MEMBER_FIELDS + NOISE_FIELDS}
    return json.dumps(shared, sort_keys=True, default=str)


def noise_of(config: dict) -> str | None:
    """The trial's `NOISE_FIELDS` as compared within a pack, or None for a quiet trial (σ = 0)."""
    if config["sigma"] == 0:
        return None
    return json.dumps({k: config.get(k) for k in NOISE_FIELDS}, sort_keys=True, default=str)


def pack_noise(members: list[dict]) -> dict:
    """The `NOISE_FIELDS` a pack trains with: its noisy members', or its first member's if all
    are quiet (their σ is 0: the fields change nothing)."""
    source = next((m for m in members if noise_of(m) is not None), members[0])
    return {k: source[k] for k in NOISE_FIELDS}


def _pack(members: list[dict]) -> dict:
    first = members[0]
    digest = hashlib.sha1("".join(m["trial_key"] for m in members).encode()).hexdigest()[:8]
    return {"trial_key": f"pack-{first['model']}{first['depth']}-{first['optimizer']}-"
                         f"x{len(members)}-{digest}", PACK_MEMBERS: members}


def _groups(configs: list[dict]) -> list[list[dict]]:
    """The trials grouped by what they share, each group in the trials' order."""
    groups: dict[str, list[dict]] = {}
    for config in configs:
        groups.setdefault(_shared(config), []).append(config)
    return list(groups.values())


def _cut(group: list[dict], size: int) -> list[list[dict]]:
    """One group's trials, in order, each in the first pack with room and no other noise."""
    packs: list[dict] = []  # {"noise": the noisy members' noise or None, "members": [...]}
    for config in group:
        noise = noise_of(config)
        pack = next((p for p in packs if len(p["members"]) < size
                     and (noise is None or p["noise"] in (None, noise))), None)
        if pack is None:
            pack = {"noise": None, "members": []}
            packs.append(pack)
        pack["members"].append(config)
        pack["noise"] = pack["noise"] or noise
    return [p["members"] for p in packs]


def pack_configs(configs: list[dict], size: int) -> list[dict]:
    """The trials as packs of at most `size` compatible trials (see the module docstring)."""
    return [_pack(members) for group in _groups(configs) for members in _cut(group, size)]


def largest_group(configs: list[dict]) -> int:
    """The most trials one pack could hold: a group's quiet trials and its largest set of noisy
    ones that agree on their noise."""
    def packable(group: list[dict]) -> int:
        noises = Counter(noise_of(c) for c in group)
        quiet = noises.pop(None, 0)
        return quiet + max(noises.values(), default=0)

    return max(map(packable, _groups(configs)), default=1)


def auto_pack_size(spec, configs: list[dict]) -> tuple[int, str]:
    """(K, why) for `packing: auto` (see the module docstring)."""
    from harness.data.catalog import dataset_info
    from harness.study.limits import memory_limit_bytes, network_size, trial_bytes

    device = "gpu" if spec.resources.gpu else "cpu"
    cap, measured = (AUTO_MAX_GPU, "") if device == "gpu" else cpu_pack_cap(
        spec.model.family, max(map(train_steps, configs)), configs[0]["jit_compile"])
    if cap == 1:
        return 1, measured
    group = largest_group(configs)
    info = dataset_info(spec.dataset.name, **spec.dataset.options)
    depth = max(c["depth"] for c in configs)
    size = network_size(spec.model.family, depth, info.input_shape, info.num_classes,
                        **spec.model.options)
    limit, _ = memory_limit_bytes()
    if spec.resources.gpu:
        from harness.study.devices import gpu_total_mb

        total = gpu_total_mb(0)
        if total:
            limit = int(total * 2**20 * min(1.0, spec.resources.gpu))
    member = trial_bytes(size, spec.dataset.batch_size, 0, info.input_shape) if size else 0
    fits = max(1, limit // member) if member else cap
    k = max(1, min(group, cap, fits))
    return k, (f"largest group of compatible trials {group}, at most {cap} on "
               f"{device.upper()}, memory for {fits}" + (f"; {measured}" if measured else ""))


def pack_step(pack: dict, on_gpu: bool) -> tuple[bool, str]:
    """(whether the pack steps under XLA, why): `packing.step_mode.xla_compiles` for its family,
    size, `jit_compile` and the training steps of its whole trial (`train_steps`)."""
    from harness.packing.step_mode import xla_compiles

    members = pack[PACK_MEMBERS]
    first = members[0]
    return xla_compiles(first["model"], len(members), first["jit_compile"], train_steps(first),
                        on_gpu)


def train_steps(config: dict) -> int:
    """A trial's training steps: epochs × batches of its training split (from the dataset's
    sizes: nothing is read)."""
    from harness.data.catalog import dataset_info

    info = dataset_info(config["dataset"], **config["dataset_options"])
    train, _ = info.split_sizes(config["validation_size"], config["limit"])
    return config["epochs"] * -(-train // config["batch_size"])


def pack_size(spec, configs: list[dict]) -> tuple[int, str]:
    """(K, why) of the study's `packing` field (1: no packing)."""
    if not spec.packing:
        return 1, "packing off"
    if spec.packing == AUTO:
        return auto_pack_size(spec, configs)
    return int(spec.packing), "packing field"


def packed(spec, configs: list[dict]) -> tuple[list[dict], list[str]]:
    """(the trials as packs, what the run says of them): how many packs of at most what size and
    why, and each pack step mode with how many packs take it and why (`pack_step`, on a GPU
    where the study's trials ask for one). Where the size is 1 the trials themselves, unpacked."""
    size, why = pack_size(spec, configs)
    if size == 1:  # a pack of one trains slower than its trial alone (benchmarks/README.md)
        return configs, [f"packing {spec.packing}: {len(configs)} trials, unpacked ({why})"]
    packs = pack_configs(configs, size)
    on_gpu = bool(spec.resources.gpu)
    modes = Counter(pack_step(pack, on_gpu) for pack in packs)
    return packs, [f"packing {spec.packing}: {len(configs)} trials in {len(packs)} packs of at "
                   f"most {size} ({why})",
                   *(f"pack step on the {'GPU' if on_gpu else 'CPU'}: "
                     f"{'XLA' if xla else 'graph mode'} for {count} packs ({why_step})"
                     for (xla, why_step), count in sorted(modes.items()))]
