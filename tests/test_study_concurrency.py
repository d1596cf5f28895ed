"""`--max-concurrent N` holds a run to N trials at once through the embedded Ray's CPUs, since
Tune keeps a resumed experiment's first limit: the embedded Ray is started with the CPUs of N
trials (rounded up, never more than Ray finds on the machine)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

PROBE = """
import sys, ray
from harness.study.runner import _init_ray
trial_cpus = None if sys.argv[1] == "none" else float(sys.argv[1])
assert _init_ray(None, False, trial_cpus) is True
print(ray.cluster_resources()["CPU"])
"""


def _embedded_cpus(trial_cpus: str) -> float:
    probe = subprocess.run([sys.executable, "-c", PROBE, trial_cpus], capture_output=True,
                           text=True, timeout=120, env={**os.environ, "RAY_ADDRESS": ""})
    assert probe.returncode == 0, probe.stdout + probe.stderr
    return float(probe.stdout.split()[-1])


@pytest.mark.parametrize(("trial_cpus", "expected"), [
    ("1", 1.0),    # --max-concurrent 1 of 1-CPU trials
    ("0.5", 1.0),  # half a CPU: rounded up, Ray counts whole CPUs
])
def test_the_embedded_ray_gets_the_cpus_of_the_trials_asked_for(trial_cpus, expected):
    assert _embedded_cpus(trial_cpus) == expected


def test_asking_for_more_than_the_machine_has_gives_what_ray_finds_there():
    assert _embedded_cpus("4096") == _embedded_cpus("none") >= 1
