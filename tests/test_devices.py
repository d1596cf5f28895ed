"""A trial's share of a GPU: the memory arithmetic and the schema (the scheduling of shares on a
Ray cluster with fake GPUs: tests/test_study_cluster.py)."""

from __future__ import annotations

import pytest

from harness.errors import HarnessError
from harness.study.devices import CONTEXT_MB, gpu_total_mb, memory_limit_mb
from harness.study.space import parse_space


@pytest.mark.parametrize("share, total, expected", [
    (0.25, 16000, 4000 - CONTEXT_MB),
    (0.5, 81559, 40779 - CONTEXT_MB),  # floor of the share, then the context
    (0.25, 143771, 35942 - CONTEXT_MB),  # an H200's 141 GiB
])
def test_memory_limit_is_the_floor_of_the_share_less_the_cuda_context(share, total, expected):
    assert memory_limit_mb(share, total) == expected
    assert int(1 / share) * (memory_limit_mb(share, total) + CONTEXT_MB) <= total


@pytest.mark.parametrize("share, total, message", [
    (1.0, 16000, r"a GPU share is in \(0, 1\)"),
    (0.0, 16000, r"a GPU share is in \(0, 1\)"),
    (0.05, 8000, r"leaves -112 MB for TensorFlow"),
])
def test_impossible_shares_are_refused(share, total, message):
    with pytest.raises(ValueError, match=message):
        memory_limit_mb(share, total)


def test_total_memory_can_be_declared(monkeypatch):
    monkeypatch.setenv("HARNESS_GPU_MEMORY_MB", "24576")
    assert gpu_total_mb(0) == 24576


def test_a_fractional_gpu_above_one_is_refused(tmp_path):
    from study_helpers import smoke_space

    path, spec = smoke_space(tmp_path)
    data = spec.model_dump(mode="json") | {"resources": {"cpu": 1, "gpu": 1.5}}
    with pytest.raises(HarnessError, match=r"field 'resources.gpu'.*0 < gpu < 1 or an integer"):
        parse_space(data, path)
    assert parse_space(data | {"resources": {"cpu": 1, "gpu": 0.25}}, path).resources.gpu == 0.25
