"""The runner on a multi-node Ray cluster (`ray.cluster_utils.Cluster`, real raylets on this
machine): GPU placement with fake GPUs, and a worker node dying under a running trial."""

from __future__ import annotations

import threading
import time

import pytest
import ray
from ray.cluster_utils import Cluster
from study_helpers import epoch_steps, smoke_space, trial_runs

from harness.study.run_schema import EPOCH_METRICS
from harness.study.runner import run_study

pytestmark = pytest.mark.slow


@pytest.fixture
def cluster():
    ray.shutdown()
    # the head has no CPUs, so every trial lands on a worker node
    head = Cluster(initialize_head=True, head_node_args={"num_cpus": 0})
    yield head
    ray.shutdown()
    head.shutdown()


def test_trials_asking_two_gpus_land_on_gpu_workers_and_run_on_cpu(tmp_path, cluster):
    for _ in range(2):
        cluster.add_node(num_cpus=1, num_gpus=2)
    cluster.wait_for_nodes()
    _, spec = smoke_space(tmp_path, name="gpus", seeds=[0], epochs=1,
                          model={"family": "dense", "depths": [2]},
                          resources={"cpu": 1, "gpu": 2})
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    outcome = run_study(spec, address=cluster.address, tracking_uri=uri,
                        storage_path=str(tmp_path / "results"))
    assert (outcome.finished, outcome.errored) == (2, 0)
    runs = trial_runs(uri, "gpus")
    workers = {n.node_id for n in cluster.worker_nodes}
    for run in runs:
        tags = run.data.tags
        assert len(tags["ray_gpu_ids"].split(",")) == 2  # Ray gave it two GPU ids
        assert tags["devices"] == "CPU"  # fake ids: TensorFlow sees no GPU, trains on CPU
        assert tags["node_id"] in workers
        assert tags["status"] == "finished"


def test_worker_node_killed_mid_trial_resumes_from_checkpoint_on_another(tmp_path, cluster):
    for _ in range(2):
        cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    epochs = 8
    _, spec = smoke_space(
        tmp_path, name="nodekill", seeds=[0], epochs=epochs, max_failures=3,
        model={"family": "dense", "depths": [4]},
        optimizers=[{"base": "adam", "learning_rate": 1.0e-3, "sigma": 1.0e-3}],
        dataset={"name": "synthetic", "batch_size": 16, "validation_size": 100,
                 "options": {"train_size": 4000, "test_size": 100, "shape": [16, 16, 1]}})
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    result = {}
    study = threading.Thread(target=lambda: result.update(outcome=run_study(
        spec, address=cluster.address, tracking_uri=uri, storage_path=str(tmp_path / "results"))))
    study.start()

    killed = None
    deadline = time.monotonic() + 180
    while killed is None and time.monotonic() < deadline:
        time.sleep(0.5)
        try:
            (run,) = trial_runs(uri, "nodekill")
        except Exception:  # store, experiment or run not created yet
            continue
        logged = epoch_steps(uri, run.info.run_id)["train_loss"]
        if 1 <= len(logged) < epochs - 2 and "node_id" in run.data.tags:
            node = next(n for n in cluster.worker_nodes if n.node_id == run.data.tags["node_id"])
            cluster.remove_node(node, allow_graceful=False)
            killed = (node.node_id, max(logged))
    assert killed, "the trial never reached a state where a node could be killed mid-run"
    study.join(timeout=300)
    assert not study.is_alive()
    assert (result["outcome"].finished, result["outcome"].errored) == (1, 0)

    (run,) = trial_runs(uri, "nodekill")
    tags = run.data.tags
    assert tags["status"] == "finished" and run.info.status == "FINISHED"
    assert tags["node_id"] != killed[0]  # it finished on the other node
    # continued from a checkpoint at least as late as the last epoch logged before the kill (a
    # result reaches the driver only after its checkpoint is stored), not from scratch
    assert killed[1] <= int(tags["resumed_from_epoch"]) < epochs
    assert epoch_steps(uri, run.info.run_id) == {m: list(range(1, epochs + 1)) for m in EPOCH_METRICS}


def test_quarter_gpus_run_four_trials_on_one_gpu_each_capped_to_its_share(tmp_path, cluster,
                                                                          monkeypatch):
    # the worker declares one (fake) GPU of 16000 MB: the raylet and its workers inherit this
    monkeypatch.setenv("HARNESS_GPU_MEMORY_MB", "16000")
    cluster.add_node(num_cpus=4, num_gpus=1)
    cluster.wait_for_nodes()
    _, spec = smoke_space(tmp_path, name="quarters", seeds=[0, 1], epochs=2,
                          model={"family": "dense", "depths": [2]},
                          resources={"cpu": 1, "gpu": 0.25})
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    outcome = run_study(spec, address=cluster.address, tracking_uri=uri,
                        storage_path=str(tmp_path / "results"))
    assert (outcome.finished, outcome.errored) == (4, 0)
    runs = trial_runs(uri, "quarters")
    assert len(runs) == 4
    for run in runs:
        assert run.data.tags["ray_gpu_ids"] == "0"  # all four on the one GPU
        assert run.data.tags["gpu_memory_limit_mb"] == str(16000 // 4 - 512)
        assert run.data.tags["devices"] == "CPU"  # fake GPU: TensorFlow trains on CPU
    # four at once: every trial started before any ended
    assert max(r.info.start_time for r in runs) < min(r.info.end_time for r in runs)
