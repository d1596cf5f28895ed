"""One pack: K compatible trials trained as one packed model, each reported as its own trial.

`train_pack(config)` is the Ray Tune function trainable of a packed study (config =
{"trial": pack config of `packs.pack_configs`}). It does for its members exactly what
`trial.train_trial` does for one trial:
- its members must agree on everything but the fields of `packs.MEMBER_FIELDS` (seed, learning
  rate, σ and the names), and its noisy members (σ > 0) on `packs.NOISE_FIELDS` (σ's schedule,
  the layer fraction) too: the pack trains them all with member 0's model, epochs and learning
  rate schedule and the noisy members' noise fields (a quiet member's noise is 0 under any), so
  a pack of members that differ in more is refused (`check_members`);
- member k's weights are those its own trial would start from (its unpacked model built after
  seeding with its seed), its batches come in its own seed's order (the global TF seed is set to
  its seed before its epoch's pipeline is made, as in its own trial), and its learning rate, σ
  and noise seed are its own (a packed optimizer: one value per member);
- every epoch reports {"epoch": e, "members": {trial_key: that trial's metrics}} (the metrics of
  `run_schema.EPOCH_METRICS`, the provenance with the first epoch, the test metrics and the
  status with its last) and, but after the last epoch, a checkpoint of the whole pack: weights,
  optimizer state, epoch and each member's status;
- a member whose training loss is NaN or infinite reports `diverged` at that epoch and is masked
  out of the step; the others go on (`packing.train.PackedTrainer`);
- runs on one device (the CPU, or its GPU or share of one: `devices.strategy`); its step is
  XLA-compiled as `packs.pack_step` says (the dry run prints the same): as the study's `jit_compile` says; under
  `auto` on a GPU, and on a CPU where the measured whole-pack times say XLA finishes a trial of
  these steps sooner (dense packs of long enough trials; conv and highway packs never). Each
  member's run is tagged `pack_step` with the mode and why.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import numpy as np

from harness.errors import HarnessError
from harness.study import devices
from harness.study.packs import (
    MEMBER_FIELDS,
    NOISE_FIELDS,
    PACK_MEMBERS,
    noise_of,
    pack_noise,
    pack_step,
)
from harness.study.run_schema import PHASE_TUNE, STATUS_DIVERGED, STATUS_FINISHED, STATUS_RUNNING
from harness.study.trial import (
    build_trial_model,
    finite,
    make_optimizer,
    open_trial_splits,
    provenance,
    seed_everything,
)

WEIGHTS_FILE = "pack.npz"
STATE_FILE = "state.json"


def _same(a, b) -> bool:
    """Equal, or equal as `packs` compares them when grouping (NaN equals NaN there)."""
    return a == b or json.dumps(a, sort_keys=True, default=str) == json.dumps(
        b, sort_keys=True, default=str)


def check_members(members: list[dict]) -> None:
    """HarnessError (one line, naming the field) unless the members' configs are equal in
    everything but `packs.MEMBER_FIELDS` and `packs.NOISE_FIELDS`, and the noisy members (σ > 0)
    in the noise fields too: the pack trains every member with member 0's values of the rest and
    the noisy members' noise (a Layer Langevin trial packed with full-Langevin ones would report
    full Langevin)."""
    first = members[0]
    noisy = [m for m in members if noise_of(m) is not None]
    pairs = [(first, m, set(MEMBER_FIELDS + NOISE_FIELDS)) for m in members[1:]]
    pairs += [(noisy[0], m, set(MEMBER_FIELDS)) for m in noisy[1:]]
    for one, other, free in pairs:
        for key in sorted((one.keys() | other.keys()) - free):
            if key not in one or key not in other or not _same(one[key], other[key]):
                raise HarnessError(
                    f"pack {first['trial_key']} cannot train {other['trial_key']} with it: "
                    f"their {key!r} differs ({one.get(key)!r} vs {other.get(key)!r}); only "
                    f"{', '.join(MEMBER_FIELDS)} may differ within a pack, and "
                    f"{', '.join(NOISE_FIELDS)} for members whose sigma is 0")


def pack_optimizer_config(members: list[dict]) -> dict:
    """The members' shared config (`packs.MEMBER_FIELDS` aside, their configs are equal), the
    noisy members' noise fields (`packs.pack_noise`) and per-member learning rates, σ and seeds
    (lists)."""
    return {**members[0], **pack_noise(members),
            "learning_rate": [m["learning_rate"] for m in members],
            "sigma": [m["sigma"] for m in members], "seed": [m["seed"] for m in members]}


def build_pack(members: list[dict], splits):
    """The packed model, every member initialised as its own trial would be."""
    from harness.packing.model import build_packed, load_members

    own = []
    for member in members:
        seed_everything(member["seed"])
        own.append(build_trial_model(member, splits))
    first = members[0]
    packed = build_packed(first["model"], first["depth"], splits.info.input_shape,
                          splits.info.num_classes, len(members), **first["model_options"])
    load_members(packed, own)
    return packed


def _train_batches(all_splits, members: list[dict], epoch: int):
    """The members' batches of `epoch`, side by side, each in its own trial's order."""
    import tensorflow as tf

    from harness.packing.train import zip_members

    datasets = []
    for splits, member in zip(all_splits, members, strict=True):
        tf.random.set_seed(member["seed"])  # the global seed its own trial's pipelines see
        datasets.append(splits.train(epoch))
    return zip_members(datasets)


def _save(directory: Path, model, optimizer, state: dict) -> None:
    values = [v.numpy() for v in model.weights] + [v.numpy() for v in optimizer.variables]
    np.savez(directory / WEIGHTS_FILE, *values)
    (directory / STATE_FILE).write_text(json.dumps(state))


def _restore(directory: Path, model, optimizer) -> dict:
    with np.load(directory / WEIGHTS_FILE) as saved:
        values = [saved[f"arr_{i}"] for i in range(len(saved.files))]
    variables = list(model.weights) + list(optimizer.variables)
    if len(values) != len(variables):
        raise HarnessError(f"pack checkpoint has {len(values)} arrays, the pack {len(variables)}")
    for variable, value in zip(variables, values, strict=True):
        variable.assign(value)
    return json.loads((directory / STATE_FILE).read_text())


def train_pack(tune_config: dict) -> None:
    """Ray Tune function trainable over the param space {"trial": pack config}; returns None.
    A trial config that is no pack (a packed study's trials where `packing: auto` chose K = 1)
    trains as `trial.train_trial`."""
    import keras
    import tensorflow as tf
    from ray import tune

    from harness.packing.train import PackedTrainer, zip_members

    if PACK_MEMBERS not in tune_config["trial"]:
        from harness.study.trial import train_trial

        return train_trial(tune_config)
    members = tune_config["trial"][PACK_MEMBERS]
    check_members(members)
    first = members[0]
    keras.backend.clear_session()
    keras.mixed_precision.set_global_policy("float32")
    strategy, memory_limit = devices.strategy()
    if strategy.num_replicas_in_sync > 1:
        raise HarnessError("a pack trains on one device; resources.gpu must be at most 1")
    all_splits = [open_trial_splits(member) for member in members]
    splits = all_splits[0]
    model = build_pack(members, splits)
    optimizer = make_optimizer(pack_optimizer_config(members), splits.steps_per_epoch, model)
    # the whole trial's steps, also after a restore: a resumed pack keeps its mode
    xla, why_xla = pack_step(tune_config["trial"],
                             on_gpu=bool(tf.config.list_logical_devices("GPU")))
    trainer = PackedTrainer(model, optimizer, jit_compile=xla)
    validation = (zip_members([s.validation for s in all_splits])
                  if splits.validation is not None else None)

    status = {m["trial_key"]: STATUS_RUNNING for m in members}
    start_epoch = 0
    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as directory:
            state = _restore(Path(directory), model, optimizer)
        start_epoch, status = state["epoch"], state["status"]
    for k, member in enumerate(members):
        if status[member["trial_key"]] != STATUS_RUNNING:
            trainer.drop(k)

    for epoch in range(start_epoch + 1, first["epochs"] + 1):
        started = time.perf_counter()
        train_loss, train_accuracy = trainer.fit_epoch(_train_batches(all_splits, members, epoch))
        training = time.perf_counter() - started
        val_loss, val_accuracy = (trainer.evaluate(validation) if validation is not None
                                  else (np.full(len(members), np.nan),) * 2)
        seconds = time.perf_counter() - started
        last = epoch == first["epochs"]
        test = trainer.evaluate(zip_members([s.test for s in all_splits])) \
            if last and first.get("phase") != PHASE_TUNE else None
        reports = {}
        for k, member in enumerate(members):
            key = member["trial_key"]
            if status[key] != STATUS_RUNNING:
                continue
            metrics = {"epoch": epoch, "train_loss": float(train_loss[k]),
                       "train_accuracy": float(train_accuracy[k]), "val_loss": float(val_loss[k]),
                       "val_accuracy": float(val_accuracy[k]), "epoch_time_s": seconds,
                       "images_per_s": splits.num_train / training}
            if epoch == start_epoch + 1:
                metrics.update(provenance(strategy, memory_limit), resumed_from_epoch=start_epoch,
                               pack_step=("xla: " if xla else "graph: ") + why_xla)
            if not finite(metrics["train_loss"]):
                status[key] = metrics["status"] = STATUS_DIVERGED
                trainer.drop(k)
            elif last and test is not None:
                test_loss, test_accuracy = float(test[0][k]), float(test[1][k])
                metrics.update(test_loss=test_loss, test_accuracy=test_accuracy)
                status[key] = metrics["status"] = (STATUS_FINISHED if finite(test_loss)
                                                   else STATUS_DIVERGED)
            elif last:
                status[key] = metrics["status"] = STATUS_FINISHED
            reports[key] = metrics
        result = {"epoch": epoch, PACK_MEMBERS: reports}
        if last or all(s != STATUS_RUNNING for s in status.values()):
            tune.report(result)
            return
        with tempfile.TemporaryDirectory() as directory:
            _save(Path(directory), model, optimizer, {"epoch": epoch, "status": status})
            tune.report(result, checkpoint=tune.Checkpoint.from_directory(directory))
