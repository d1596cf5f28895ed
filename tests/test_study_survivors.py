"""Mutants of harness.study (looks, tuning, packs) that the fast tier let through, each now
caught here. Expected values are worked by hand from the modules' docstrings."""

from __future__ import annotations

from pathlib import Path

import yaml
from study_helpers import smoke_space

from harness.study import looks
from harness.study.devices import MEMORY_ENV as GPU_MEMORY_ENV
from harness.study.packs import auto_pack_size
from harness.study.run_schema import STATUS_FINISHED
from harness.study.space import parse_space, trial_configs
from harness.study.tuning import Choice

REPO = Path(__file__).resolve().parent.parent
SMOKE_DECIDED = REPO / "search_spaces" / "smoke_decided.yaml"
PLAIN, NOISY = "synthetic-dense6-Adam", "synthetic-dense6-L-Adam"


def decided_spec(tmp_path, **changes):
    """smoke_decided.yaml with top-level `changes` (None deletes the field)."""
    data = yaml.safe_load(SMOKE_DECIDED.read_text())
    for key, value in changes.items():
        if value is None:
            data.pop(key)
        else:
            data[key] = value
    path = tmp_path / "space.yaml"
    path.write_text(yaml.safe_dump(data))
    return parse_space(data, path)


def choices(lr_plain: float, lr_langevin: float) -> dict:
    return {PLAIN: Choice(PLAIN, 1, 0.9, {"learning_rate": lr_plain}, "a"),
            NOISY: Choice(NOISY, 2, 0.9, {"learning_rate": lr_langevin, "sigma": 1e-3}, "b")}


def records(values: dict, seeds) -> list[dict]:
    return [{"trial_key": f"{cell}-{seed}", "arm": cell, "seed": seed, "status": STATUS_FINISHED,
             "test_accuracy": value} for cell, per_seed in values.items()
            for seed, value in zip(seeds, per_seed)]


def test_without_a_declared_decision_the_only_look_stops_the_study(tmp_path):
    spec = decided_spec(tmp_path, decision=None)  # one look at all 8 final seeds
    state = looks.add_look(spec, choices(1e-3, 1e-3), looks.LookState(), 8,
                           records({PLAIN: [0.5] * 8, NOISY: [0.6] * 8}, range(2, 10)))
    assert state.stopped is True
    assert state.decision == {"stop": True, "reason": "no declared decision"}
    assert looks.look_lines(spec, state) == ["look 1 of 1 (8 seeds per arm) done"]


def test_look_lines_give_each_declared_test_and_the_familys_decision(tmp_path):
    # twins at the same learning rate: both tests meet the tuned arms. Seeds 2-5: L-Adam 0.9,
    # Adam 0.1 (chance 0.1, success above 0.2). Accuracy: 4 equal gains +0.8, exact sign-flip
    # p = 2 / 2^4 = 0.125; success 4/4 vs 0/4, Fisher p = 2 / C(8, 4) = 2/70. Neither passes
    # look 1 of 2's O'Brien-Fleming threshold (t = 0.5): undecided, the study goes on.
    spec = decided_spec(tmp_path)
    state = looks.add_look(spec, choices(1e-3, 1e-3), looks.LookState(), 4,
                           records({PLAIN: [0.1] * 4, NOISY: [0.9] * 4}, range(2, 6)))
    accuracy, success = (h.name for h in looks.hypotheses(spec))
    assert looks.look_lines(spec, state) == [
        "look 1 of 2 (4 seeds per arm):",
        f"  {accuracy}: estimate +0.800 on 4 seeds, p = 0.125 -> undecided",
        f"  {success}: estimate +1.000 on 4 seeds, p = {2 / 70:.4g} -> undecided",
        "  continuing: 2 of 2 tests undecided",
    ]


def test_control_lines_name_both_choices_and_the_two_control_arms(tmp_path):
    spec = decided_spec(tmp_path)
    assert looks.control_lines(spec, choices(5e-3, 1e-3)) == [
        f"matched-lr controls for {NOISY}: it chose learning_rate=0.001, Adam chose "
        f"learning_rate=0.005; finals add {NOISY}[sigma=0] and {NOISY}[lr=Adam]"]
    assert looks.control_lines(spec, choices(1e-3, 1e-3)) == []  # same lr: no control


def test_auto_packing_on_a_gpu_share_fits_whole_members_into_that_share(tmp_path, monkeypatch):
    # a 1000 MB GPU, the study's trials get half of it: 500 MiB. A member takes 48 MiB (as if
    # measured), so floor(500 / 48) = 10 members fit, fewer than the 16 trials and the GPU cap.
    from harness.study import limits

    _, spec = smoke_space(tmp_path, seeds=list(range(16)), packing="auto",
                          model={"family": "dense", "depths": [2]},
                          optimizers=[{"base": "adam", "learning_rate": 1e-3}],
                          resources={"cpu": 1, "gpu": 0.5})
    monkeypatch.setenv(GPU_MEMORY_ENV, "1000")
    monkeypatch.setattr(limits, "trial_bytes", lambda *args: 48 * 2**20)
    k, why = auto_pack_size(spec, trial_configs(spec))
    assert k == 10 and isinstance(k, int)
    assert "memory for 10" in why and "on GPU" in why
