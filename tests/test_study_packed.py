"""A packed study end to end (slow): the same MLflow records as without packing, the same
tuning choices, and a killed driver resumed with nothing lost or duplicated (the interrupted-
driver test of test_study.py runs packed too)."""

from __future__ import annotations

import json

import pytest
import ray
import yaml
from mlflow.tracking import MlflowClient
from study_helpers import REPO, TINY_DATA, trial_runs

from harness.study.run_schema import EPOCH_METRICS, FINAL_METRICS
from harness.study.runner import run_study
from harness.study.space import load_space

pytestmark = pytest.mark.slow
PACK_TAGS = ("pack", "pack_size")


@pytest.fixture(scope="module", autouse=True)
def embedded_ray():
    yield
    ray.shutdown()


def _records(uri: str, experiment: str) -> dict[str, dict]:
    """trial_key → its run's status, params, tags (but the run's own ids and provenance) and
    per-epoch metrics."""
    client = MlflowClient(uri)
    records = {}
    for run in trial_runs(uri, experiment):
        metrics = {name: [(m.step, m.value) for m in sorted(client.get_metric_history(
            run.info.run_id, name), key=lambda m: m.step)]
            for name in EPOCH_METRICS + FINAL_METRICS}
        records[run.data.tags["trial_key"]] = {
            "status": (run.info.status, run.data.tags["status"]),
            "params": run.data.params, "metrics": metrics,
            "tags": {k: v for k, v in run.data.tags.items()
                     if k in ("optimizer", "depth", "seed", "variant", "pair", "phase", "arm",
                              "resumed_from_epoch", "mlflow.runName") or k in PACK_TAGS},
        }
    return records


def _same_records(alone: dict, packed: dict, pack_size: str | None = None,
                  rel: float = 1e-4) -> None:
    """Equal records; metrics to `rel` (float32 rounding of another summation order, grown by
    training: tuning draws learning rates up to 0.1, where it grows most)."""
    assert sorted(packed) == sorted(alone)
    for key, record in alone.items():
        ours = packed[key]
        assert ours["status"] == record["status"] == ("FINISHED", "finished"), key
        assert ours["params"] == record["params"], key
        assert {k: v for k, v in ours["tags"].items() if k not in PACK_TAGS} == record["tags"]
        assert ours["tags"]["pack"].startswith("pack-"), key
        if pack_size is not None:
            assert ours["tags"]["pack_size"] == pack_size, key
        for name in EPOCH_METRICS + FINAL_METRICS:
            steps = [s for s, _ in record["metrics"][name]]
            assert [s for s, _ in ours["metrics"][name]] == steps, (key, name)
            if name in ("epoch_time_s", "images_per_s"):
                continue  # wall time: a pack's own
            assert [v for _, v in ours["metrics"][name]] == pytest.approx(
                [v for _, v in record["metrics"][name]], rel=rel, abs=1e-5), (key, name)


def _space(tmp_path, name: str, source: str, **changes):
    data = yaml.safe_load((REPO / "search_spaces" / source).read_text())
    data.update(name=name, dataset=dict(TINY_DATA), **changes)
    tmp_path.mkdir(exist_ok=True)
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data))
    return load_space(path)


def _run_both(tmp_path, name: str, source: str, packing, **changes):
    """The study run as it is and with `packing`, in stores of their own; (MLflow URIs,
    the packed run's outcome and console lines)."""
    uris = {p: f"sqlite:///{tmp_path}/{p}.db" for p in ("alone", "packed")}
    lines = []
    for place, extra in (("alone", {}), ("packed", {"packing": packing})):
        spec = _space(tmp_path / place, name, source, **extra, **changes)
        outcome = run_study(spec, tracking_uri=uris[place], storage_path=str(tmp_path / place),
                            out=lines.append if extra else print)
    return uris, outcome, lines


def test_a_packed_study_records_what_the_unpacked_study_records(tmp_path):
    """Adam and L-Adam at depths 2 and 3, seeds 0 and 1: one pack of 4 per depth."""
    uris, outcome, lines = _run_both(tmp_path, "same", "smoke.yaml", 8, seeds=[0, 1], epochs=2,
                                     model={"family": "dense", "depths": [2, 3]})
    assert (outcome.total, outcome.finished, outcome.errored) == (8, 8, 0)
    assert any("packing 8: 8 trials in 2 packs of at most 8 (packing field)" in line
               for line in lines), lines
    _same_records(_records(uris["alone"], "same"), _records(uris["packed"], "same"), "4")


def test_a_packed_tuned_study_chooses_and_records_what_the_unpacked_one_does(tmp_path):
    """The tuning protocol unchanged: the same choices from the same tuning trials, the same
    final runs; `auto` says what it picked."""
    uris, outcome, lines = _run_both(tmp_path, "tuned", "smoke_tuned.yaml", "auto", epochs=2,
                                     model={"family": "dense", "depths": [3]})
    assert (outcome.total, outcome.finished, outcome.errored) == (14, 14, 0)
    # Adam and L-Adam differ in σ alone: the twins share a pack in each phase
    assert any("phase tune: packing auto: 8 trials in 1 packs of at most 8 (largest group of "
               "compatible trials 8, at most 16 on CPU" in line for line in lines), lines
    assert any("phase final: packing auto: 6 trials in 1 packs of at most 6" in line
               for line in lines), lines
    choices = [json.loads((tmp_path / p / "tuned" / "choices.json").read_text())
               for p in ("alone", "packed")]
    assert sorted(choices[0]) == sorted(choices[1])
    for arm, choice in choices[0].items():
        ours = choices[1][arm]
        assert (ours["point"], ours["trial_key"], ours["values"]) == (
            choice["point"], choice["trial_key"], choice["values"]), arm
        assert ours["score"] == pytest.approx(choice["score"], rel=1e-4), arm
    _same_records(_records(uris["alone"], "tuned"), _records(uris["packed"], "tuned"), rel=1e-3)


def test_a_study_auto_leaves_unpacked_trains_and_records_its_trials_as_an_unpacked_one(
        tmp_path, monkeypatch):
    """Where `packing: auto` finds unpacked trials fastest (conv + dense at a study's length on
    a CPU), packs of one would train slower than their trials alone: the trials run unpacked,
    recorded as the unpacked study records them, to the last bit, and with no pack tags."""
    from harness.packing import cpu_seconds

    monkeypatch.setitem(cpu_seconds.CPU_SECONDS, "dense", {
        1: {"graph": (1.0, 2.0)}, 8: {"graph": (9.0, 17.0)}})  # unpacked fastest at any length
    uris, outcome, lines = _run_both(tmp_path, "single", "smoke.yaml", "auto", seeds=[0, 1],
                                     epochs=2, model={"family": "dense", "depths": [2]})
    assert (outcome.total, outcome.finished, outcome.errored) == (4, 4, 0)
    assert any("packing auto: 4 trials, unpacked (dense trials of" in line for line in lines), \
        lines
    alone, ours = (_records(uris[p], "single") for p in ("alone", "packed"))
    assert sorted(ours) == sorted(alone)
    for key, record in alone.items():
        assert not set(PACK_TAGS) & set(ours[key]["tags"]), key
        for name in ("epoch_time_s", "images_per_s"):  # wall time
            record["metrics"].pop(name), ours[key]["metrics"].pop(name)
        assert ours[key] == record, key


def test_each_pack_trains_in_a_fresh_worker_process(tmp_path):
    """A worker that trained pack after pack kept growing, so packs do not reuse Tune's actors:
    two packs one after the other run in two processes (Tune's own `pid` of each result)."""
    import ray

    from harness.study.runner import _fit
    from harness.study.space import trial_configs

    spec = _space(tmp_path, "fresh", "smoke.yaml", packing=2, seeds=[0, 1], epochs=1,
                  model={"family": "dense", "depths": [2, 3]},
                  optimizers=[{"base": "adam", "learning_rate": 1e-3}])
    configs = trial_configs(spec)
    assert len(configs) == 4  # Adam at 2 depths x 2 seeds: 2 packs of 2
    ray.init(num_cpus=1, include_dashboard=False, ignore_reinit_error=True)
    outcome, results = _fit(spec, configs, str(tmp_path / "results"), "fresh",
                            f"sqlite:///{tmp_path}/mlflow.db", 1, print, "fresh")
    assert (outcome.finished, outcome.errored) == (4, 0)
    pids = [r.metrics["pid"] for r in results]
    assert len(pids) == 2 and pids[0] != pids[1]
