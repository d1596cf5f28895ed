"""Cluster mode: the launcher configs in cluster/ and a study run as a Ray job on a real cluster.

- Every cluster/*.yaml validates against Ray's own cluster-config schema (`ray-schema.json`, then
  `prepare_config` + `validate_config`, what `ray up` does before it touches a cloud) and fills
  what cluster/README.md relies on.
- cluster/mlflow-server.sh starts a real MLflow server: bound where told, Host-header checks on,
  basic auth when Flask-WTF (mlflow[auth]) is installed, no password in its log.
- End to end: a two-process Ray cluster on loopback (`ray start --head` with no CPUs, so every
  trial runs on the second `ray start --address` node), an `mlflow server` on 127.0.0.1, the
  smoke study (synthetic data) submitted with `ray job submit`, and every trial's run checked
  over MLflow's REST API.

Every process a test starts is stopped by its process group, then anything left that names the
test's own Ray temp dir or tmp_path is killed by pid: other Ray instances on the machine are
never touched (no `ray stop`). Ray token authentication uses a token file in tmp_path
(RAY_AUTH_TOKEN_PATH), never ~/.ray/auth_token.
"""

from __future__ import annotations

import copy
import ipaddress
import json
import os
import re
import secrets
import shlex
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml

from harness.errors import HarnessError

ROOT = Path(__file__).resolve().parents[1]
CLUSTER = ROOT / "cluster"
CONFIGS = sorted(CLUSTER.glob("*.yaml"))
CLOUD_CONFIGS = [p for p in CONFIGS if p.stem in ("aws", "gcp")]
SERVER_SCRIPT = CLUSTER / "mlflow-server.sh"
BIN = Path(sys.executable).parent  # the venv's bin: ray, mlflow, harness


# -- helpers ---------------------------------------------------------------------------------------
def _load(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def _free_ports(n: int) -> list[int]:
    sockets = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def _http(url: str, data: dict | None = None, headers: dict | None = None, timeout: float = 30):
    """(status, parsed JSON or text) of a GET, or of a POST when `data` is given."""
    body = json.dumps(data).encode() if data is not None else None
    request = urllib.request.Request(url, data=body, headers={
        "Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            text = response.read().decode()
            status = response.status
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")
    try:
        return status, json.loads(text)
    except json.JSONDecodeError:
        return status, text


def _wait_for(predicate, timeout: float, what: str, proc=None, log: Path | None = None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except OSError:
            pass
        if proc is not None and proc.poll() is not None:
            break
        time.sleep(0.5)
    tail = log.read_text(errors="replace")[-3000:] if log and log.exists() else ""
    pytest.fail(f"{what} not ready after {timeout:.0f} s\n{tail}")


def _pids_naming(marker: str) -> list[int]:
    """Processes of this user whose command line contains `marker` (never this process)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if entry.stat().st_uid != os.getuid():
                continue
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if marker in cmdline:
            found.append(int(entry.name))
    return found


def _stop_groups(procs: list[subprocess.Popen], timeout: float = 8) -> None:
    """SIGTERM the process groups `procs` lead (started with start_new_session), then SIGKILL."""
    for proc in procs:
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
    deadline = time.monotonic() + timeout
    for proc in procs:
        try:
            proc.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            pass
    for proc in procs:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        proc.wait(5)


def _kill_leftovers(markers: list[str]) -> list[int]:
    """Kill (by pid) what still names one of `markers`; returns those pids."""
    pids = sorted({pid for marker in markers for pid in _pids_naming(marker)})
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return pids


# -- 1. the launcher configs -----------------------------------------------------------------------
def test_cluster_dir_has_the_three_configs():
    assert {p.name for p in CONFIGS} >= {"aws.yaml", "gcp.yaml", "onprem.yaml"}
    assert (CLUSTER / "README.md").is_file()
    assert os.access(SERVER_SCRIPT, os.X_OK)


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_config_validates_against_rays_schema(path):
    import jsonschema
    import ray.autoscaler
    from ray.autoscaler._private.util import prepare_config, validate_config

    schema = json.loads((Path(ray.autoscaler.__file__).parent / "ray-schema.json").read_text())
    raw = _load(path)
    try:
        jsonschema.validate(raw, schema)  # the file as written: no unknown or misspelt field
    except jsonschema.ValidationError as exc:
        pytest.fail(f"{path.name}: {exc.message} at {'/'.join(map(str, exc.absolute_path))}")
    prepared = prepare_config(copy.deepcopy(raw))  # what `ray up` does before any cloud call
    validate_config(prepared)
    assert prepared["head_node_type"] in prepared["available_node_types"]


def _command_text(commands: list[str]) -> str:
    return "\n".join(" ".join(c.split()) for c in commands)


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_config_fills_what_the_readme_relies_on(path):
    config = _load(path)
    text = path.read_text()

    # The repository and Ray's token are file-mounted; the package is installed with `.[gpu]`.
    mounts = config["file_mounts"]
    assert "." in mounts.values(), "the repository (local '.') is not file-mounted"
    repo = next(remote for remote, local in mounts.items() if local == ".")
    assert mounts.get("~/.ray/auth_token") == "~/.ray/auth_token"
    setup = _command_text(config["setup_commands"])
    assert f"cd {repo} && " in setup and "pip install -e '.[gpu]'" in setup
    assert "ray[default]==2.60" in setup  # the dashboard / job server `ray job submit` needs
    assert "mlflow[auth]" in _command_text(config["head_setup_commands"])

    # Ray: token authentication on every node, dashboard not on the world.
    head = _command_text(config["head_start_ray_commands"])
    worker = _command_text(config["worker_start_ray_commands"])
    assert re.search(r"export RAY_AUTH_MODE=token;.*ray start --head", head, re.S)
    assert re.search(r"export RAY_AUTH_MODE=token;.*ray start --address", worker, re.S)
    assert "--num-cpus=0" in head  # trials go to the GPU workers
    assert "0.0.0.0" not in text

    # MLflow on the head: started by the script, on a private address, artifacts on shared storage.
    start = next(c for c in config["head_start_ray_commands"] if "mlflow-server.sh start" in c)
    assert f"{repo}/cluster/mlflow-server.sh start" in " ".join(start.split())
    settings = dict(re.findall(r"(MLFLOW_[A-Z_]+)=(\S+)", start))
    host = settings["MLFLOW_HOST"]
    if host != "$(hostname":  # `$(hostname -I | awk ...)`: the node's private address
        address = ipaddress.ip_address(host)
        assert address.is_private and not address.is_loopback and not address.is_unspecified
    assert settings.get("MLFLOW_AUTH", "1") == "1"
    assert re.match(r"(s3://|gs://|/mnt/)", settings["MLFLOW_ARTIFACTS"])
    assert head.index("ray start --head") < head.index("mlflow-server.sh start")

    # No credential in the file: only paths to secrets.
    assert not re.search(r"(?i)(password|secret|aws_access_key|aws_secret)\s*[:=]", text)
    assert not re.search(r"AKIA[0-9A-Z]{16}|postgresql://[^\s:@/]+:[^\s@/]+@", text)


@pytest.mark.parametrize("path", CLOUD_CONFIGS, ids=lambda p: p.name)
def test_cloud_config_has_cpu_head_and_1_4_8_gpu_workers(path):
    config = _load(path)
    types = config["available_node_types"]
    head = types[config["head_node_type"]]
    assert head["resources"].get("GPU", 0) == 0 and head["resources"].get("CPU") == 0
    workers = {name: t for name, t in types.items() if name != config["head_node_type"]}
    assert sorted(t["resources"]["GPU"] for t in workers.values()) == [1, 4, 8]
    for name, t in workers.items():
        assert t["min_workers"] >= 0 and t["max_workers"] >= 1, name
        assert t["resources"]["CPU"] >= 8 * t["resources"]["GPU"] / 4, name  # cpu: 8 per 4 GPUs
    assert config["max_workers"] >= sum(t["min_workers"] for t in workers.values())


def test_onprem_config_is_a_list_of_private_hosts():
    config = _load(CLUSTER / "onprem.yaml")
    provider = config["provider"]
    assert provider["type"] == "local"
    hosts = [provider["head_ip"], *provider["worker_ips"]]
    assert len(provider["worker_ips"]) >= 1
    assert all(ipaddress.ip_address(h).is_private for h in hosts)
    start = next(c for c in config["head_start_ray_commands"] if "mlflow-server.sh start" in c)
    assert f"MLFLOW_HOST={provider['head_ip']}" in start
    assert "ssh_private_key" in config["auth"]


UBUNTU_BASHRC = '# ~/.bashrc\ncase $- in *i*) ;; *) return;; esac\nexport LATER=1\n'
# Ubuntu's ~/.profile, which a login shell reads: it sources ~/.bashrc
UBUNTU_PROFILE = 'if [ -n "$BASH_VERSION" ] && [ -f "$HOME/.bashrc" ]; then . "$HOME/.bashrc"; fi\n'
NODE_LINES = ['export PATH="$HOME/venv/bin:$PATH"', "export RAY_AUTH_MODE=token",
              "export RAY_TMPDIR=/tmp/langevin-$(id -u)"]


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_every_shell_on_a_node_finds_ray_and_sends_the_token(tmp_path, path):
    """The setup command puts the venv on PATH, RAY_AUTH_MODE=token and the node's own Ray temp
    dir first in ~/.bashrc (once, however often it runs), so a shell that stops at Ubuntu's early
    return for non-interactive shells (`bash -l -c 'ray status'`, `ssh HOST CMD`) finds `ray` and
    `harness` and sends the token, as does `ray exec`'s interactive login shell (which also runs
    the start commands)."""
    (command,) = [c for c in _load(path)["setup_commands"] if "RAY_AUTH_MODE" in c]
    home = tmp_path / "home"
    (home / "venv" / "bin").mkdir(parents=True)
    for tool in ("ray", "harness"):
        script = home / "venv" / "bin" / tool
        script.write_text(f"#!/bin/sh\necho venv-{tool}\n")
        script.chmod(0o755)
    (home / ".bashrc").write_text(UBUNTU_BASHRC)
    (home / ".profile").write_text(UBUNTU_PROFILE)
    env = {"HOME": str(home), "PATH": os.environ["PATH"]}
    for _ in range(2):
        subprocess.run(["bash", "-c", command], env=env, check=True, timeout=30)
    assert (home / ".bashrc").read_text() == "\n".join(NODE_LINES) + "\n" + UBUNTU_BASHRC
    from ray.autoscaler._private.command_runner import _with_interactive  # what `ray exec` runs

    probe = "ray; harness; echo $RAY_AUTH_MODE $RAY_TMPDIR"
    expected = ["venv-ray", "venv-harness", f"token /tmp/langevin-{os.getuid()}"]
    for shell in (["bash", "-l", "-c", probe], ["bash", "-c", f"source ~/.bashrc; {probe}"],
                  ["bash", "-c", " ".join(_with_interactive(probe))]):
        out = subprocess.run(shell, env=env, capture_output=True, text=True, timeout=30,
                             stdin=subprocess.DEVNULL)
        assert out.stdout.strip().splitlines()[-3:] == expected, (shell, out.stdout, out.stderr)
    fresh = tmp_path / "fresh"  # a node without a ~/.bashrc yet
    fresh.mkdir()
    subprocess.run(["bash", "-c", command], env={**env, "HOME": str(fresh)}, check=True)
    assert (fresh / ".bashrc").read_text() == "\n".join(NODE_LINES) + "\n"


def _start_commands(path: Path) -> list[str]:
    config = _load(path)
    return config["head_start_ray_commands"] + config["worker_start_ray_commands"]


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_start_commands_stop_only_this_clusters_ray(path):
    config = _load(path)
    for commands in (config["head_start_ray_commands"], config["worker_start_ray_commands"]):
        assert commands[0] == "~/langevin-harness/cluster/ray-stop.sh"
    assert not any(re.search(r"\bray stop\b", c) for c in _start_commands(path))


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_start_commands_raise_open_files_only_as_far_as_the_hard_limit(path):
    starts = [c for c in _start_commands(path) if "ray start" in c]
    assert len(starts) == 2
    for command in starts:
        (limit,) = re.findall(r"ulimit[^;]*;", command)
        for hard in (1024, None):  # a lowered hard limit, and this machine's own
            lower = f"ulimit -n {hard}; " if hard else ""  # soft and hard
            out = subprocess.run(["bash", "-c", f"{lower}{limit} ulimit -Sn; ulimit -Hn"],
                                 capture_output=True, text=True, timeout=30)
            assert out.returncode == 0 and out.stderr == "", (limit, out.stderr)
            soft, hard_now = out.stdout.split()
            wanted = 65536 if hard_now == "unlimited" else min(65536, int(hard_now))
            assert int(soft) == wanted, (limit, out.stdout)


def _process(args: list[str]) -> subprocess.Popen:
    return subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def test_ray_stop_script_stops_this_clusters_ray_and_nothing_else(tmp_path):
    """Stand-ins for Ray's processes: one naming a session under $RAY_TMPDIR/ray, with a child
    that names nothing (a worker Ray renamed `ray::...`), one naming the GCS address Ray saved
    there (the Ray Client server); and another cluster's: its own temp dir, a GCS port that only
    begins like this one's."""
    temp = tmp_path / "ours" / "ray"
    temp.mkdir(parents=True)
    (temp / "ray_current_cluster").write_text("127.0.0.9:6379")
    keep = "sleep 300 & wait"
    ours = [_process(["bash", "-c", keep, "raylet", f"--socket={temp}/session_1/sockets/raylet"]),
            _process(["bash", "-c", keep, "client", "--address=127.0.0.9:6379", "--port=10001"])]
    theirs = [_process(["bash", "-c", keep, "raylet", f"--socket={tmp_path}/other/ray/session_1"]),
              _process(["bash", "-c", keep, "client", "--address=127.0.0.9:63790"])]
    try:
        time.sleep(0.5)
        children = {proc.pid: [int(p) for p in subprocess.run(
            ["pgrep", "-P", str(proc.pid)], capture_output=True, text=True).stdout.split()]
            for proc in ours + theirs}
        assert all(len(c) == 1 for c in children.values()), children
        result = subprocess.run([str(CLUSTER / "ray-stop.sh")], capture_output=True, text=True,
                                env={**os.environ, "RAY_TMPDIR": str(tmp_path / "ours"),
                                     "RAY_STOP_GRACE_S": "5"}, timeout=60)
        assert result.returncode == 0, result.stderr
        assert "4 processes" in result.stdout, result.stdout
        for proc in ours:
            proc.wait(10)
            assert not any(_alive(pid) for pid in children[proc.pid])
        assert all(proc.poll() is None for proc in theirs)
        assert all(_alive(pid) for proc in theirs for pid in children[proc.pid])
    finally:
        _stop_groups(ours + theirs)


def test_readme_makes_the_token_file_private():
    readme = (CLUSTER / "README.md").read_text()
    generate = readme.index("ray get-auth-token --generate")
    assert readme.index("chmod 600 ~/.ray/auth_token") > generate


# -- 2. `harness submit` on the laptop --------------------------------------------------------------
def _git(checkout: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(checkout), "-c", "user.name=test", "-c",
                           "user.email=test@example.invalid", *args], capture_output=True,
                          text=True, check=True, timeout=60).stdout.strip()


def _small_checkout(root: Path, git: bool = True) -> Path:
    """A stand-in for this repository: cluster/run_study.py and a study file (synthetic data,
    storage on S3), committed when `git`."""
    (root / "cluster").mkdir(parents=True)
    (root / "cluster" / "run_study.py").write_text("")
    (root / "search_spaces").mkdir()
    (root / "search_spaces" / "s.yaml").write_text(yaml.safe_dump(
        {**SPACE, "name": "s", "storage_path": "s3://bucket/results"}, sort_keys=False))
    if git:
        _git(root, "init", "--quiet")
        _git(root, "add", "-A")
        _git(root, "commit", "--quiet", "-m", "study")
    return root


def test_submit_sends_the_checkout_its_commit_and_the_command_that_resumes(tmp_path,
                                                                           monkeypatch):
    from harness.cli import build_parser
    from harness.study.submit import job_request

    checkout = _small_checkout(tmp_path / "checkout")
    monkeypatch.chdir(checkout)
    flags = ["--tracking-uri", "http://10.0.0.5:5000", "--storage-path", "s3://b/r"]
    args = build_parser().parse_args(["submit", str(checkout / "search_spaces" / "s.yaml"),
                                      *flags])
    address = "http://127.0.0.1:8265"
    entrypoint, runtime_env = job_request(args, checkout, address)
    assert entrypoint == ("python cluster/run_study.py run search_spaces/s.yaml "
                          "--tracking-uri http://10.0.0.5:5000 --storage-path s3://b/r")
    assert runtime_env == {"working_dir": str(checkout), "env_vars": {
        "HARNESS_GIT_COMMIT": _git(checkout, "rev-parse", "--short", "HEAD"),
        "HARNESS_GIT_DIRTY": "false",
        "HARNESS_RESUME_COMMAND": f"harness submit search_spaces/s.yaml --address {address} "
                                  + " ".join(flags),
        "RAY_JOB_STOP_WAIT_TIME_S": "60"}}

    (checkout / "notes.txt").write_text("not committed")  # an untracked file ships too
    assert job_request(args, checkout, address)[1]["env_vars"]["HARNESS_GIT_DIRTY"] == "true"
    _, runtime_env = job_request(build_parser().parse_args(["submit", "search_spaces/s.yaml"]),
                                 checkout, address)
    assert runtime_env["env_vars"]["HARNESS_RESUME_COMMAND"] == \
        f"harness submit search_spaces/s.yaml --address {address}"
    entrypoint, runtime_env = job_request(build_parser().parse_args(
        ["submit", "search_spaces/s.yaml", "--tuning-only"]), checkout, address)
    assert entrypoint == "python cluster/run_study.py run search_spaces/s.yaml --tuning-only"
    assert runtime_env["env_vars"]["HARNESS_RESUME_COMMAND"] == \
        f"harness submit search_spaces/s.yaml --address {address} --tuning-only"
    (tmp_path / "elsewhere.yaml").write_text("")
    with pytest.raises(HarnessError, match="outside .*checkout"):
        job_request(build_parser().parse_args(["submit", str(tmp_path / "elsewhere.yaml")]),
                    checkout, address)


def test_runs_record_the_commit_that_submit_sent(tmp_path, monkeypatch):
    """The driver of a submitted study tags every run with the laptop's commit and dirty flag
    from the job's environment (its copy of the checkout has no .git)."""
    from study_helpers import smoke_space, trial_runs
    from trainable_helpers import FakeTrial

    from harness.study.space import trial_configs
    from harness.study.tracking import MLflowRecorder

    monkeypatch.setenv("HARNESS_GIT_COMMIT", "0123abc")
    monkeypatch.setenv("HARNESS_GIT_DIRTY", "true")
    _, spec = smoke_space(tmp_path, name="submitted", seeds=[0],
                          model={"family": "dense", "depths": [2]},
                          optimizers=[{"base": "adam", "learning_rate": 1.0e-3}])
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    recorder = MLflowRecorder(uri, spec.experiment_name, spec.name)
    recorder.on_trial_start(0, [], FakeTrial({"trial": trial_configs(spec)[0]}))
    recorder.flush()
    (run,) = trial_runs(uri, spec.experiment_name)
    assert (run.data.tags["git_commit"], run.data.tags["git_dirty"]) == ("0123abc", "true")


class _JobServer:
    """A stand-in for the Ray dashboard's job server with token authentication: every request
    without the token is refused as Ray's middleware refuses it (401 without a token, 403 with
    another); `requests` lists the Authorization header of each request it got."""

    def __init__(self, token: str):
        import http.server
        import threading

        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (http.server's name)
                sent = self.headers.get("Authorization")
                server.requests.append(sent)
                status, text = ((401, "Unauthorized: Missing authentication token") if not sent
                                else (403, "Forbidden: Invalid authentication token")
                                if sent != f"Bearer {token}" else (200, '{"ray_version": "x"}'))
                self.send_response(status)
                self.end_headers()
                self.wfile.write(text.encode())

            do_POST = do_GET  # noqa: N815

            def log_message(self, *args):
                pass

        self.requests: list[str | None] = []
        self._http = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.address = f"http://127.0.0.1:{self._http.server_address[1]}"
        threading.Thread(target=self._http.serve_forever, daemon=True).start()

    def close(self):
        self._http.shutdown()
        self._http.server_close()


@pytest.fixture
def job_server():
    server = _JobServer(token="the-clusters-token")
    yield server
    server.close()


def _submit(checkout: Path, home: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    """`harness submit` run from `checkout`, with `home` as HOME, no Ray settings but `env`."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    return subprocess.run([str(BIN / "harness"), "submit", *args], cwd=checkout,
                          env={**base, "HOME": str(home), **env}, capture_output=True, text=True,
                          timeout=120)


def _one_line_error(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 2, result.stdout + result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("harness submit: error: ")
    return line


@pytest.mark.parametrize("storage", [["--storage-path", "results"], []],
                         ids=["relative", "none"])
def test_submit_refuses_local_storage_before_sending_anything(tmp_path, job_server, storage):
    checkout = _small_checkout(tmp_path / "checkout", git=False)
    space = checkout / "search_spaces" / "s.yaml"
    space.write_text(yaml.safe_dump({**SPACE, "name": "s"}))  # no storage_path in the file
    line = _one_line_error(_submit(checkout, tmp_path, "search_spaces/s.yaml", "--address",
                                   job_server.address, *storage))
    assert "search_spaces/s.yaml: field 'storage_path' is" in line and "s3://" in line
    assert job_server.requests == []


@pytest.mark.parametrize("case", ["no auth mode", "wrong token file", "no token file"])
def test_a_refused_ray_token_is_one_line_naming_what_to_set(tmp_path, job_server, case):
    checkout = _small_checkout(tmp_path / "checkout", git=False)
    home = tmp_path / "home"
    home.mkdir()
    wrong = tmp_path / "old_token"
    wrong.write_text("an-old-token")
    env = {"no auth mode": {},
           "wrong token file": {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(wrong)},
           "no token file": {"RAY_AUTH_MODE": "token"}}[case]
    line = _one_line_error(_submit(checkout, home, "search_spaces/s.yaml", "--address",
                                   job_server.address, **env))
    assert job_server.address in line
    if case == "no auth mode":
        assert "export RAY_AUTH_MODE=token" in line and job_server.requests == [None]
    elif case == "wrong token file":
        assert f"refused the token in the token file {wrong} (RAY_AUTH_TOKEN_PATH)" in line
        assert job_server.requests == ["Bearer an-old-token"]
    else:
        assert f"the token file {home}/.ray/auth_token is missing" in line
        assert "RAY_AUTH_TOKEN_PATH" in line and job_server.requests == []


# -- 3. the MLflow server script ---------------------------------------------------------------------
def _flask_wtf_installed() -> bool:
    import importlib.util

    return importlib.util.find_spec("flask_wtf") is not None


def test_mlflow_server_script_refuses_an_open_server_without_auth(tmp_path):
    env = {**os.environ, "HOME": str(tmp_path), "MLFLOW_HOST": "10.1.2.3", "MLFLOW_AUTH": "0",
           "PATH": f"{BIN}:{os.environ['PATH']}"}
    result = subprocess.run([str(SERVER_SCRIPT), "start"], env=env, capture_output=True,
                            text=True, timeout=30)
    assert result.returncode == 2 and "without authentication" in result.stderr
    assert not (tmp_path / "mlflow" / "server.pid").exists()


def test_mlflow_server_script_uri_is_the_address_it_started_with(tmp_path):
    env = {**os.environ, "HOME": str(tmp_path), "MLFLOW_HOST": "10.9.9.9", "MLFLOW_PORT": "6000"}
    missing = subprocess.run([str(SERVER_SCRIPT), "uri"], env=env, capture_output=True,
                             text=True, timeout=30)
    assert missing.returncode == 3 and "no MLflow server was started" in missing.stderr
    (tmp_path / ".mlflow").mkdir()
    (tmp_path / ".mlflow" / "tracking_uri").write_text("http://10.0.0.5:5000\n")
    started = subprocess.run([str(SERVER_SCRIPT), "uri"], env=env, capture_output=True,
                             text=True, timeout=30)
    assert (started.returncode, started.stdout) == (0, "http://10.0.0.5:5000\n")


@pytest.mark.slow
def test_mlflow_server_script_serves_with_auth_and_host_checks(tmp_path):
    auth = _flask_wtf_installed()  # basic auth needs mlflow[auth]: installed on the cluster's head
    (port,) = _free_ports(1)
    env = {**os.environ, "HOME": str(tmp_path), "MLFLOW_HOST": "127.0.0.1",
           "MLFLOW_PORT": str(port), "MLFLOW_WORKERS": "1", "MLFLOW_AUTH": "1" if auth else "0",
           "MLFLOW_BIN": str(BIN / "mlflow"), "PATH": f"{BIN}:{os.environ['PATH']}"}
    pid_file = tmp_path / "mlflow" / "server.pid"
    try:
        result = subprocess.run([str(SERVER_SCRIPT), "start"], env=env, capture_output=True,
                                text=True, timeout=150)
        assert result.returncode == 0, result.stdout + result.stderr
        url = f"http://127.0.0.1:{port}/api/2.0/mlflow/experiments/search?max_results=1"
        assert (tmp_path / ".mlflow" / "tracking_uri").read_text().strip() == f"http://127.0.0.1:{port}"
        if auth:
            password = (tmp_path / ".mlflow" / "admin_password").read_text().strip()
            basic = "Basic " + __import__("base64").b64encode(f"admin:{password}".encode()).decode()
            assert _http(url)[0] == 401
            assert _http(url, headers={"Authorization": basic})[0] == 200
            # verified logins are cached (MLflow's HMAC-keyed cache), a wrong password never is
            assert "auth_cache_ttl_seconds = 300" in (tmp_path / "mlflow" / "basic_auth.ini").read_text()
            wrong = "Basic " + __import__("base64").b64encode(b"admin:wrong").decode()
            assert _http(url, headers={"Authorization": wrong})[0] == 401
            assert _http(url, headers={"Authorization": basic, "Host": "evil.example:80"})[0] == 403
            for secret in ("admin_password", "credentials", "flask_secret_key"):
                mode = stat.S_IMODE((tmp_path / ".mlflow" / secret).stat().st_mode)
                assert mode == 0o600, (secret, oct(mode))
            assert password in (tmp_path / ".mlflow" / "credentials").read_text()
            assert password not in (tmp_path / "mlflow" / "server.log").read_text()
            assert password not in result.stdout + result.stderr
        else:
            assert _http(url)[0] == 200
            assert _http(url, headers={"Host": "evil.example:80"})[0] == 403
        status = subprocess.run([str(SERVER_SCRIPT), "status"], env=env, capture_output=True,
                                text=True, timeout=30)
        assert status.returncode == 0 and "running" in status.stdout
    finally:
        pid = int(pid_file.read_text()) if pid_file.exists() else None
        subprocess.run([str(SERVER_SCRIPT), "stop"], env=env, capture_output=True, timeout=60)
        if pid is not None:
            try:
                os.killpg(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
    assert not _pids_naming(f"--port {port}")


# -- 4. end to end: a study as a Ray job on a two-node cluster ---------------------------------------
SPACE = {
    "name": "cluster_smoke",
    "description": "smoke study on synthetic data, submitted as a Ray job",
    "dataset": {"name": "synthetic", "batch_size": 32, "validation_size": 100,
                "options": {"train_size": 6000, "test_size": 200, "shape": [8, 8, 1]}},
    "model": {"family": "dense", "depths": [3]},
    "optimizers": [{"base": "adam", "learning_rate": 1.0e-3},
                   {"base": "adam", "learning_rate": 1.0e-3, "sigma": 1.0e-3}],
    "seeds": [0],
    # epochs of about a second, so that the job is stopped with its trials half-way
    "epochs": 8,
    "resources": {"cpu": 1, "gpu": 0},
    "max_failures": 1,
}
TRIALS = 1 * 2 * 1  # depths × optimizers × seeds
# `ray start` replaces 127.0.0.1 by the machine's outward address (services.resolve_ip_for_localhost);
# 127.0.0.2 is loopback too and is kept, so cluster traffic stays on the loopback interface.
NODE_IP = "127.0.0.2"


def _ray_node_ports() -> list[str]:
    names = ["--node-manager-port", "--object-manager-port", "--dashboard-agent-listen-port",
             "--dashboard-agent-grpc-port", "--metrics-export-port", "--runtime-env-agent-port"]
    return [f"{name}={port}" for name, port in zip(names, _free_ports(len(names)), strict=True)]


def _checkout_of_this_tree(dest: Path) -> str:
    """A clone of this repository at `dest` holding this working tree's files, committed there
    (the job runs the code under test, and its commit is not this repository's); its HEAD."""
    subprocess.run(["git", "clone", "--quiet", "--shared", str(ROOT), str(dest)], check=True,
                   timeout=120)
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                            cwd=ROOT, capture_output=True, check=True, timeout=60).stdout
    for name in filter(None, listed.decode().split("\0")):
        target = dest / name
        if (ROOT / name).is_file():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, target)
        else:  # deleted in the working tree
            target.unlink(missing_ok=True)
    _git(dest, "add", "-A")
    _git(dest, "commit", "--quiet", "--allow-empty", "-m", "the working tree under test")
    return _git(dest, "rev-parse", "--short", "HEAD")


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_study_runs_as_a_ray_job_on_a_two_node_cluster(tmp_path):
    """`harness submit` from a checkout (its working dir shipped, its commit recorded), `ray job
    stop` half-way (the driver says how to resume, the open runs end KILLED), then the command it
    printed, which resumes the study to its end."""
    from ray._private.utils import get_dashboard_dependency_error

    # ray[default] is a dependency: without the dashboard there is no job server at all
    assert get_dashboard_dependency_error() is None, get_dashboard_dependency_error()
    from harness.study.run_schema import (
        EPOCH_METRICS,
        STATUS_FINISHED,
        STATUS_INTERRUPTED,
        TAG_STATUS,
        TAG_TRIAL_KEY,
    )

    # Short temp dirs (Unix socket paths are limited to ~107 characters), one per raylet: a
    # second raylet on one host sharing the head's would extract the job's working dir under it.
    ray_tmp = Path(tempfile.mkdtemp(prefix="rc-", dir="/tmp"))
    worker_tmp = Path(tempfile.mkdtemp(prefix="rw-", dir="/tmp"))
    token = tmp_path / "ray_token"
    token.write_text(secrets.token_hex(32))
    token.chmod(0o600)
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "RAY_AUTH_TOKEN")}
    env.update({
        "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(token),
        "RAY_USAGE_STATS_ENABLED": "0", "TF_CPP_MIN_LOG_LEVEL": "3",
        "MLFLOW_DISABLE_TELEMETRY": "true", "PATH": f"{BIN}:{env.get('PATH', '')}",
        # as on a cluster, a file-mounted repository that the job must not run in
        "LANGEVIN_REPO": str(tmp_path),
    })
    gcs_port, dash_port, client_port, mlflow_port = _free_ports(4)
    checkout = tmp_path / "checkout"
    commit = _checkout_of_this_tree(checkout)
    # the study file, not committed: the laptop's checkout is dirty
    (checkout / "cluster_smoke.yaml").write_text(yaml.safe_dump(SPACE, sort_keys=False))
    tracking = f"http://127.0.0.1:{mlflow_port}"
    dashboard = f"http://127.0.0.1:{dash_port}"
    results = tmp_path / "results"
    submit = [str(BIN / "harness"), "submit", "cluster_smoke.yaml", "--address", dashboard,
              "--tracking-uri", tracking, "--storage-path", str(results)]
    api = f"{tracking}/api/2.0/mlflow"
    started: list[subprocess.Popen] = []

    def launch(args, log_name):
        log = tmp_path / log_name
        proc = subprocess.Popen(args, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True, cwd=tmp_path)
        started.append(proc)
        return proc, log

    def ray_job(*args) -> str:
        done = subprocess.run([str(BIN / "ray"), "job", *args, "--address", dashboard], env=env,
                              capture_output=True, text=True, timeout=180)
        return done.stdout + done.stderr

    def runs() -> list[dict]:
        code, body = _http(f"{api}/experiments/get-by-name?experiment_name={SPACE['name']}")
        if code != 200:
            return []
        code, body = _http(f"{api}/runs/search", {
            "experiment_ids": [body["experiment"]["experiment_id"]], "max_results": 100})
        assert code == 200, body
        return body.get("runs", [])

    def steps(run: dict, metric: str = "train_loss") -> list[int]:
        code, body = _http(f"{api}/metrics/get-history?run_id={run['info']['run_id']}"
                           f"&metric_key={metric}")
        assert code == 200, body
        return sorted(m["step"] for m in body.get("metrics", []))

    def tags(run: dict) -> dict[str, str]:
        return {t["key"]: t["value"] for t in run["data"].get("tags", [])}

    try:
        head, head_log = launch([
            str(BIN / "ray"), "start", "--head", "--block", f"--node-ip-address={NODE_IP}",
            f"--port={gcs_port}", "--include-dashboard=true", "--dashboard-host=127.0.0.1",
            f"--dashboard-port={dash_port}", f"--ray-client-server-port={client_port}",
            "--num-cpus=0", "--num-gpus=0", f"--temp-dir={ray_tmp}", "--disable-usage-stats",
            *_ray_node_ports(),
        ], "ray_head.log")
        mlflow, mlflow_log = launch([
            str(BIN / "mlflow"), "server", "--backend-store-uri", f"sqlite:///{tmp_path}/mlflow.db",
            "--default-artifact-root", str(tmp_path / "art"), "--host", "127.0.0.1",
            "--port", str(mlflow_port), "--workers", "1",
        ], "mlflow.log")
        bearer = {"Authorization": f"Bearer {token.read_text()}"}
        _wait_for(lambda: _http(f"{dashboard}/api/version", headers=bearer)[0] == 200, 90,
                  "Ray head (dashboard)", head, head_log)
        assert _http(f"{dashboard}/api/version")[0] == 401  # token authentication is on

        worker, worker_log = launch([
            str(BIN / "ray"), "start", "--block", f"--address={NODE_IP}:{gcs_port}",
            f"--node-ip-address={NODE_IP}", "--num-cpus=2", "--num-gpus=0",
            f"--temp-dir={worker_tmp}", '--resources={"trial_node": 1}', *_ray_node_ports(),
        ], "ray_worker.log")

        def two_nodes():
            status, body = _http(f"{dashboard}/nodes?view=summary", headers=bearer)
            nodes = body["data"]["summary"] if status == 200 and isinstance(body, dict) else []
            return sum(n.get("raylet", {}).get("state") == "ALIVE" for n in nodes) == 2

        _wait_for(two_nodes, 90, "second Ray node", worker, worker_log)
        _wait_for(lambda: _http(f"{tracking}/health")[0] == 200, 90, "mlflow server",
                  mlflow, mlflow_log)

        # Submitted from the checkout: the driver runs on the head, trials on the worker (the
        # head has no CPU), the code is the checkout's (working dir).
        first = subprocess.run([*submit, "--no-wait"], env=env, capture_output=True, text=True,
                               timeout=180, cwd=checkout)
        assert first.returncode == 0, first.stdout + first.stderr
        job = re.search(r"submitted as job (\S+) ", first.stdout).group(1)

        def job_status() -> str | None:
            code, body = _http(f"{dashboard}/api/jobs/{job}", headers=bearer)
            return body.get("status") if code == 200 and isinstance(body, dict) else None

        # Stopped with a trial half-way.
        def half_way():
            if job_status() in ("FAILED", "SUCCEEDED", "STOPPED"):
                pytest.fail(f"job {job_status()} before the stop:\n{ray_job('logs', job)[-3000:]}")
            return any(r["info"]["status"] == "RUNNING" and 1 <= len(steps(r)) <= 3
                       for r in runs())

        _wait_for(half_way, 300, "a trial half-way")
        ray_job("stop", job)
        output = ray_job("logs", job)
        assert job_status() == "STOPPED", output[-3000:]
        (resume,) = re.findall(r"interrupted: \d/2 trials ended; resume with: (.*)", output)
        assert shlex.split(resume) == ["harness", *submit[1:]], resume
        stopped = [r for r in runs() if r["info"]["status"] != "FINISHED"]
        assert stopped, "every trial finished before the stop"
        for run in stopped:
            assert (run["info"]["status"], tags(run)[TAG_STATUS]) == ("KILLED", STATUS_INTERRUPTED)

        # The command it printed resumes the study to its end.
        again = subprocess.run([str(BIN / "harness"), *shlex.split(resume)[1:]], env=env,
                               capture_output=True, text=True, timeout=400, cwd=checkout)
        output = again.stdout + again.stderr
        assert again.returncode == 0, output[-5000:]
        assert "resuming study 'cluster_smoke'" in output and "SUCCEEDED" in output, output[-3000:]

        # Every trial: exactly one run, FINISHED, one value per epoch, the checkout's commit.
        final = runs()
        assert len(final) == TRIALS, [r["info"]["run_name"] for r in final]
        assert len({tags(r)[TAG_TRIAL_KEY] for r in final}) == TRIALS
        for run in final:
            name = run["info"]["run_name"]
            assert run["info"]["status"] == "FINISHED", (name, run["info"]["status"])
            assert tags(run)[TAG_STATUS] == STATUS_FINISHED, (name, tags(run).get("error"))
            assert (tags(run)["git_commit"], tags(run)["git_dirty"]) == (commit, "true"), name
            for metric in EPOCH_METRICS:
                assert steps(run, metric) == list(range(1, SPACE["epochs"] + 1)), (name, metric)
        # Results and checkpoints went to the storage path the job was given.
        assert (results / SPACE["name"]).is_dir()
    finally:
        _stop_groups(started)
        _kill_leftovers([str(ray_tmp), str(worker_tmp), str(tmp_path)])
        shutil.rmtree(ray_tmp, ignore_errors=True)
        shutil.rmtree(worker_tmp, ignore_errors=True)
    time.sleep(1)
    assert not _pids_naming(str(ray_tmp)), "processes of the test cluster outlived it"


@pytest.mark.slow
def test_run_study_helper_runs_harness_from_the_repo(tmp_path):
    """`ray submit ... cluster/run_study.py run SPACE` copies the script alone to the head and
    runs it there: paths resolve in the file-mounted repo (LANGEVIN_REPO), not the cwd. (In a
    job of `harness submit` it runs in the checkout that holds it: the end-to-end test.)"""
    script = tmp_path / "run_study.py"
    shutil.copy(CLUSTER / "run_study.py", script)
    env = {**os.environ, "LANGEVIN_REPO": str(ROOT), "HOME": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, str(script), "run", "search_spaces/smoke.yaml", "--dry-run"], env=env,
        cwd=tmp_path, capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "study 'smoke'" in result.stdout and "trial_key" in result.stdout
