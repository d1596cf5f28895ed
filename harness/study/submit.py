"""`harness submit`: run a study as a Ray job on a cluster, from the laptop, in one command.

    harness submit search_spaces/resnet20_cifar10.yaml --address http://127.0.0.1:8265 \\
        --storage-path s3://my-langevin-bucket/results
    harness submit SPACE.yaml --no-wait          # print the job's id and return

Run it from the root of this checkout. Before anything is sent the file is validated as `harness
run --dry-run` validates it (no TensorFlow; the job builds every optimizer and network before its
first trial), and a relative or missing storage path is refused (on the cluster it would land
in the job's working directory, which Ray deletes after the job). Then Ray's job submission gets
the checkout as the job's working directory (what git ignores stays behind), with the checkout's
commit and dirty flag (the tags `git_commit` and `git_dirty` of every run: the cluster's copy has
no .git) and the command that resumes the study. On the head the job runs `cluster/run_study.py
run SPACE.yaml ...`, which records to the head's MLflow server unless --tracking-uri names another.
The command follows the job's output until the job ends. `ray job stop ID` stops the study (its
open runs end KILLED; the driver prints the command that resumes it: this one, again).
"""

from __future__ import annotations

import argparse
import os
import shlex
from pathlib import Path

from harness.errors import HarnessError

# What the job runs on the head, in its working directory: `harness run` with the head's MLflow.
ENTRYPOINT = ("python", "cluster/run_study.py", "run")
# Seconds `ray job stop` leaves the driver to save Tune's state and close its runs before Ray
# kills it (Ray's own default, 3, is too short for that).
STOP_WAIT_S = 60
EXIT_CODES = {"SUCCEEDED": 0, "STOPPED": 130}  # a job that ended otherwise: 1
DEFAULT_TOKEN_FILE = "~/.ray/auth_token"


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "submit",
        help="run a study as a Ray job on a cluster, with this checkout as its code",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("space", help="search-space YAML file inside this checkout")
    parser.add_argument("--address", help="the cluster's job server (its dashboard), e.g. "
                        "http://127.0.0.1:8265 while `ray dashboard cluster/aws.yaml` runs; "
                        "default: RAY_ADDRESS")
    parser.add_argument("--tracking-uri", help="MLflow tracking URI as the head node reaches it; "
                        "default: the head's server (cluster/mlflow-server.sh)")
    parser.add_argument("--storage-path", help="results and checkpoints: s3://, gs:// or an "
                        "absolute path every node mounts; default: the file's storage_path")
    parser.add_argument("--tuning-only", action="store_true",
                        help="a tuned study: its tuning only (harness run --tuning-only); "
                        "declare its decision, then submit the file again for the finals")
    parser.add_argument("--no-wait", action="store_true",
                        help="print the job's id and return instead of following its output")
    parser.set_defaults(func=submit)


def _in_checkout(space: str, checkout: Path) -> str:
    """`space` as a path relative to the checkout (where the job starts on the head)."""
    if not (checkout / ENTRYPOINT[1]).is_file():
        raise HarnessError(f"{checkout} is not a langevin-harness checkout (no {ENTRYPOINT[1]}): "
                           "run harness submit from the checkout's root, the folder the job gets "
                           "as its working directory")
    try:
        return Path(space).resolve().relative_to(checkout.resolve()).as_posix()
    except ValueError:
        raise HarnessError(f"{space}: outside {checkout}, the checkout the job gets as its "
                           "working directory; put the file inside it") from None


def _refuse_local_storage(given: str | None, where: str) -> None:
    """A missing or relative storage path, refused here with the driver's own line (it would be
    refused on the cluster too, once the job started); an absolute path is the cluster's to
    judge (it warns when not every node can mount it)."""
    if given and ("://" in given or os.path.isabs(os.path.expanduser(given))):
        return
    from harness.study.limits import check_cluster_storage

    check_cluster_storage(given, where)


def job_request(args: argparse.Namespace, checkout: Path, address: str) -> tuple[str, dict]:
    """(entrypoint, runtime_env) of the study's job: the checkout as working directory, its
    provenance and the command that resumes the study as environment variables."""
    from harness.study.runner import RESUME_ENV
    from harness.study.tracking import GIT_TAGS, checkout_provenance

    space = _in_checkout(args.space, checkout)
    flags = [item for flag, value in (("--tracking-uri", args.tracking_uri),
                                      ("--storage-path", args.storage_path)) if value
             for item in (flag, value)] + (["--tuning-only"] if args.tuning_only else [])
    provenance = checkout_provenance(checkout)
    env_vars = {variable: provenance[tag] for tag, variable in GIT_TAGS.items()}
    env_vars[RESUME_ENV] = shlex.join(["harness", "submit", space, "--address", address, *flags])
    env_vars["RAY_JOB_STOP_WAIT_TIME_S"] = str(STOP_WAIT_S)
    return (shlex.join([*ENTRYPOINT, space, *flags]),
            {"working_dir": str(checkout), "env_vars": env_vars})


def _token_problem(address: str) -> str:
    """What to set when the job server at `address` refused this client's Ray token, or there was
    none to send: Ray sends one only with RAY_AUTH_MODE=token, from RAY_AUTH_TOKEN, else the file
    RAY_AUTH_TOKEN_PATH, else ~/.ray/auth_token."""
    if os.environ.get("RAY_AUTH_MODE") != "token":
        return (f"the Ray cluster at {address} refused a request without its token: export "
                f"RAY_AUTH_MODE=token (Ray then sends the token in {DEFAULT_TOKEN_FILE}, the file "
                "RAY_AUTH_TOKEN_PATH or RAY_AUTH_TOKEN)")
    if os.environ.get("RAY_AUTH_TOKEN"):
        return (f"the Ray cluster at {address} refused the token in RAY_AUTH_TOKEN: set it to the "
                "cluster's token, or unset it to send the token file")
    given = os.environ.get("RAY_AUTH_TOKEN_PATH")
    path = Path(given or DEFAULT_TOKEN_FILE).expanduser()
    named = f"the token file {path}" + (" (RAY_AUTH_TOKEN_PATH)" if given else "")
    if not path.is_file() or not path.read_text().strip():
        return (f"no Ray token to send to {address}: {named} is missing or empty; put the "
                "cluster's token there (mode 600), or point RAY_AUTH_TOKEN_PATH at its file")
    return (f"the Ray cluster at {address} refused the token in {named}: put the cluster's token "
            "there (the one `ray up` mounted on its nodes; mode 600), or point "
            "RAY_AUTH_TOKEN_PATH at its file")


def _client(address: str):
    """Ray's job client for `address`; a refused or missing token, or no answer, is one line."""
    from ray.exceptions import AuthenticationError
    from ray.job_submission import JobSubmissionClient

    os.environ["RAY_API_SERVER_ADDRESS"] = address  # Ray takes it (or RAY_ADDRESS) over --address
    try:
        return JobSubmissionClient(address)
    except AuthenticationError:
        raise HarnessError(_token_problem(address)) from None
    except ConnectionError:
        raise HarnessError(f"no Ray job server answers at {address}: is the tunnel to the head "
                           "up (`ray dashboard cluster/CLUSTER.yaml`)?") from None


def _follow(client, job_id: str) -> int:
    """Print the job's output until it ends; its exit status (`EXIT_CODES`)."""
    import asyncio

    async def tail():
        async for lines in client.tail_job_logs(job_id):
            print(lines, end="", flush=True)

    asyncio.run(tail())
    status = client.get_job_status(job_id).value
    print(f"job {job_id}: {status}")
    return EXIT_CODES.get(status, 1)


def submit(args: argparse.Namespace) -> int:
    from harness.console import quiet_start
    from harness.study.space import load_space
    from harness.study.tracking import GIT_TAGS

    checkout = Path.cwd()
    with quiet_start(verbose=False, import_tensorflow=False):  # libraries' start-up lines
        # every check without TensorFlow (seconds); the job builds each optimizer and network
        # once more before its first trial
        spec = load_space(args.space, build=False)
        _refuse_local_storage(args.storage_path or spec.storage_path, args.space)
        address = args.address or os.environ.get("RAY_ADDRESS")
        if not address:
            raise HarnessError("give --address (or set RAY_ADDRESS): the cluster's job server, "
                               "e.g. http://127.0.0.1:8265 while `ray dashboard cluster/aws.yaml` "
                               "runs")
        entrypoint, runtime_env = job_request(args, checkout, address)
        client = _client(address)
        job_id = client.submit_job(entrypoint=entrypoint, runtime_env=runtime_env)
    commit, dirty = (runtime_env["env_vars"][variable] for variable in GIT_TAGS.values())
    print(f"study {spec.name!r} submitted as job {job_id} (commit {commit}, uncommitted changes: "
          f"{dirty}); output: ray job logs -f {job_id}; stop: ray job stop {job_id}", flush=True)
    return 0 if args.no_wait else _follow(client, job_id)
