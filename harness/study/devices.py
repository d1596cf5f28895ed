"""The devices a trial trains on: the GPUs Ray gave it, whole or a share of one.

- Whole GPUs (`resources: {gpu: 1}` or more): `MirroredStrategy` over them, TensorFlow's memory
  growth on (it takes what it needs, nothing is shared).
- A share of one GPU (`resources: {gpu: 0.25}`: four trials on one GPU): Ray gives every such
  trial the same GPU id; each trial's TensorFlow process is capped by a logical device with a
  memory limit of its share,

      limit_MB = floor(share × total_MB) − CONTEXT_MB,

  where CONTEXT_MB (512) is kept for the CUDA context and cuDNN/cuBLAS workspaces that every
  process holds outside TensorFlow's allocator, so that 1/share trials fit side by side. The
  total comes from `nvidia-smi` (or `HARNESS_GPU_MEMORY_MB`, which also declares it for the
  fake GPUs of a test cluster).
- No GPU (or fake GPU ids with no device behind them): the default CPU strategy.

Tune reuses a trial's actor for the next trial that asks for the same resources (`reuse_actors`),
and a reused actor keeps its TensorFlow process, its GPU and the memory it holds: the cap is set
by the first trial of the process (TensorFlow accepts it only before it initialises the GPU) and
stays right for every later trial, which asks for the same share. That is why actor reuse stays
on for GPU trials: it saves the TensorFlow start and cannot let a process outgrow its share. A
packed study starts a fresh process per pack instead (`runner`: a reused worker's resident memory
grew from pack to pack on a CPU).
"""

from __future__ import annotations

import math
import os
import subprocess

CONTEXT_MB = 512
MEMORY_ENV = "HARNESS_GPU_MEMORY_MB"


def memory_limit_mb(share: float, total_mb: int) -> int:
    """TensorFlow's memory cap for a trial that holds `share` (0 < share < 1) of a GPU."""
    if not 0 < share < 1:
        raise ValueError(f"a GPU share is in (0, 1); got {share}")
    limit = math.floor(share * total_mb) - CONTEXT_MB
    if limit < 256:
        raise ValueError(f"a {share:g} share of a {total_mb} MB GPU leaves {limit} MB for "
                         f"TensorFlow after the {CONTEXT_MB} MB context; ask for a larger share")
    return limit


def gpu_total_mb(gpu_id: str | int) -> int | None:
    """Memory of one GPU in MB: HARNESS_GPU_MEMORY_MB, else nvidia-smi; None when unknown."""
    if os.environ.get(MEMORY_ENV):
        return int(os.environ[MEMORY_ENV])
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=memory.total", "--format=csv,noheader,"
                              "nounits", "-i", str(gpu_id)], capture_output=True, text=True,
                             timeout=10)
        return int(out.stdout.split()[0]) if out.returncode == 0 else None
    except (OSError, ValueError, IndexError, subprocess.TimeoutExpired):
        return None


def gpu_share() -> tuple[float, list[str]]:
    """(GPUs Ray assigned to this trial, their ids); (0, []) outside Ray or without GPUs."""
    import ray

    if not ray.is_initialized() or ray.get_runtime_context().worker.mode != ray.WORKER_MODE:
        return 0.0, []  # a driver holds no resources (only a task or actor does)
    assigned = ray.get_runtime_context().get_assigned_resources().get("GPU", 0.0)
    return float(assigned), [str(i) for i in ray.get_gpu_ids()]


def strategy():
    """The trial's `tf.distribute` strategy; returns (strategy, memory cap in MB or None)."""
    import tensorflow as tf

    share, ids = gpu_share()
    limit = None
    if 0 < share < 1 and ids:
        total = gpu_total_mb(ids[0])
        limit = memory_limit_mb(share, total) if total else None
    gpus = tf.config.list_physical_devices("GPU")
    for gpu in gpus:
        try:
            if limit is not None:
                tf.config.set_logical_device_configuration(
                    gpu, [tf.config.LogicalDeviceConfiguration(memory_limit=limit)])
            else:
                tf.config.experimental.set_memory_growth(gpu, True)
        except RuntimeError:  # a reused actor: set by its first trial (see module docstring)
            pass
    if not gpus:
        return tf.distribute.get_strategy(), limit
    return tf.distribute.MirroredStrategy([f"/gpu:{i}" for i in range(len(gpus))]), limit
