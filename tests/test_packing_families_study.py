"""A packed highway study end to end (slow): the same MLflow records as without packing."""

from __future__ import annotations

import pytest
from test_study_packed import _records, _run_both, _same_records, embedded_ray  # noqa: F401

pytestmark = pytest.mark.slow


def test_a_packed_highway_study_records_what_the_unpacked_study_records(tmp_path):
    """Adam and L-Adam on highway nets of depth 2 and 3, seeds 0 and 1: one pack of 4 per
    depth."""
    uris, outcome, lines = _run_both(tmp_path, "highway", "smoke.yaml", 8, seeds=[0, 1],
                                     epochs=2, model={"family": "highway", "depths": [2, 3]})
    assert (outcome.total, outcome.finished, outcome.errored) == (8, 8, 0)
    assert any("packing 8: 8 trials in 2 packs of at most 8 (packing field)" in line
               for line in lines), lines
    _same_records(_records(uris["alone"], "highway"), _records(uris["packed"], "highway"), "4")
