"""`harness` on the cluster's head node: the entrypoint of `harness submit`'s Ray job, and a script
for `ray submit` (which copies it alone to the head and runs it there).

    ray submit cluster/aws.yaml cluster/run_study.py run search_spaces/resnet20_cifar10.yaml \
        --storage-path s3://my-langevin-bucket/results
    ray submit cluster/aws.yaml cluster/run_study.py analyze resnet20_cifar10

Runs in the checkout that holds this script (a job's working directory, as `harness submit` sent
it), else in the file-mounted repository (~/langevin-harness, or LANGEVIN_REPO), so search_spaces/
paths resolve. Unless --tracking-uri is given it uses the head's MLflow server (the URI
cluster/mlflow-server.sh wrote to ~/.mlflow/tracking_uri; its credentials come from
~/.mlflow/credentials). The Ray address is the cluster's own (`auto`) unless RAY_ADDRESS (set in a
Ray job) says otherwise.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

CHECKOUT = Path(__file__).resolve().parents[1]
REPO = CHECKOUT if (CHECKOUT / "harness").is_dir() else \
    Path(os.environ.get("LANGEVIN_REPO", "~/langevin-harness")).expanduser()
TRACKING_URI_FILE = Path("~/.mlflow/tracking_uri").expanduser()


def main(argv: list[str]) -> int:
    if REPO.is_dir():
        os.chdir(REPO)
    command = argv[0] if argv else ""
    if command in ("run", "analyze") and "--tracking-uri" not in argv \
            and "MLFLOW_TRACKING_URI" not in os.environ and TRACKING_URI_FILE.is_file():
        argv = [*argv, "--tracking-uri", TRACKING_URI_FILE.read_text().strip()]
    if command == "run" and "--address" not in argv and "RAY_ADDRESS" not in os.environ:
        argv = [*argv, "--address", "auto"]
    from harness.cli import main as harness_main

    return harness_main(argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
