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


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_every_shell_on_a_node_has_ray_token_auth(tmp_path, path):
    """The setup command puts RAY_AUTH_MODE=token first in ~/.bashrc (once, however often it
    runs), so even a shell that stops at Ubuntu's early return for non-interactive shells, as
    well as `ray exec`'s interactive login shell, sends the token."""
    (command,) = [c for c in _load(path)["setup_commands"] if "RAY_AUTH_MODE" in c]
    home = tmp_path / "home"
    home.mkdir()
    ubuntu = '# ~/.bashrc\ncase $- in *i*) ;; *) return;; esac\nexport LATER=1\n'
    (home / ".bashrc").write_text(ubuntu)
    env = {"HOME": str(home), "PATH": os.environ["PATH"]}
    for _ in range(2):
        subprocess.run(["bash", "-c", command], env=env, check=True, timeout=30)
    bashrc = (home / ".bashrc").read_text()
    assert bashrc == "export RAY_AUTH_MODE=token\n" + ubuntu
    from ray.autoscaler._private.command_runner import _with_interactive  # what `ray exec` runs

    for shell in (["bash", "-c", "source ~/.bashrc; echo $RAY_AUTH_MODE"],
                  ["bash", "-c", " ".join(_with_interactive("echo $RAY_AUTH_MODE"))]):
        out = subprocess.run(shell, env=env, capture_output=True, text=True, timeout=30,
                             stdin=subprocess.DEVNULL)
        assert out.stdout.strip().splitlines()[-1] == "token", (shell, out.stdout, out.stderr)
    fresh = tmp_path / "fresh"  # a node without a ~/.bashrc yet
    fresh.mkdir()
    subprocess.run(["bash", "-c", command], env={**env, "HOME": str(fresh)}, check=True)
    assert (fresh / ".bashrc").read_text() == "export RAY_AUTH_MODE=token\n"


def test_readme_makes_the_token_file_private():
    readme = (CLUSTER / "README.md").read_text()
    generate = readme.index("ray get-auth-token --generate")
    assert readme.index("chmod 600 ~/.ray/auth_token") > generate


# -- 2. the MLflow server script ---------------------------------------------------------------------
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


# -- 3. end to end: a study as a Ray job on a two-node cluster ---------------------------------------
SPACE = {
    "name": "cluster_smoke",
    "description": "smoke study on synthetic data, submitted as a Ray job",
    "dataset": {"name": "synthetic", "batch_size": 64, "validation_size": 100,
                "options": {"train_size": 600, "test_size": 200}},
    "model": {"family": "dense", "depths": [3]},
    "optimizers": [{"base": "adam", "learning_rate": 1.0e-3},
                   {"base": "adam", "learning_rate": 1.0e-3, "sigma": 1.0e-3}],
    "seeds": [0],
    "epochs": 2,
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


@pytest.mark.slow
@pytest.mark.timeout(420)
def test_study_runs_as_a_ray_job_on_a_two_node_cluster(tmp_path):
    from ray._private.utils import get_dashboard_dependency_error

    # ray[default] is a dependency: without the dashboard there is no job server at all
    assert get_dashboard_dependency_error() is None, get_dashboard_dependency_error()
    from harness.study.run_schema import EPOCH_METRICS, STATUS_FINISHED, TAG_STATUS, TAG_TRIAL_KEY

    # A short temp dir of its own (Unix socket paths are limited to ~107 characters).
    ray_tmp = Path(tempfile.mkdtemp(prefix="rc-", dir="/tmp"))
    token = tmp_path / "ray_token"
    token.write_text(secrets.token_hex(32))
    token.chmod(0o600)
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "RAY_AUTH_TOKEN")}
    env.update({
        "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(token),
        "RAY_USAGE_STATS_ENABLED": "0", "TF_CPP_MIN_LOG_LEVEL": "3",
        "MLFLOW_DISABLE_TELEMETRY": "true", "PATH": f"{BIN}:{env.get('PATH', '')}",
    })
    gcs_port, dash_port, client_port, mlflow_port = _free_ports(4)
    space = tmp_path / "cluster_smoke.yaml"
    space.write_text(yaml.safe_dump(SPACE, sort_keys=False))
    tracking = f"http://127.0.0.1:{mlflow_port}"
    dashboard = f"http://127.0.0.1:{dash_port}"
    started: list[subprocess.Popen] = []

    def launch(args, log_name):
        log = tmp_path / log_name
        proc = subprocess.Popen(args, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True, cwd=tmp_path)
        started.append(proc)
        return proc, log

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
            '--resources={"trial_node": 1}', *_ray_node_ports(),
        ], "ray_worker.log")

        def two_nodes():
            status, body = _http(f"{dashboard}/nodes?view=summary", headers=bearer)
            nodes = body["data"]["summary"] if status == 200 and isinstance(body, dict) else []
            return sum(n.get("raylet", {}).get("state") == "ALIVE" for n in nodes) == 2

        _wait_for(two_nodes, 90, "second Ray node", worker, worker_log)
        _wait_for(lambda: _http(f"{tracking}/health")[0] == 200, 90, "mlflow server",
                  mlflow, mlflow_log)

        # The study as a Ray job: the driver runs on the head, trials on the worker (head: 0 CPU).
        submission = f"cluster-smoke-{secrets.token_hex(3)}"
        job = subprocess.run([
            str(BIN / "ray"), "job", "submit", "--address", dashboard,
            "--submission-id", submission, "--",
            str(BIN / "harness"), "run", str(space), "--tracking-uri", tracking,
            "--storage-path", str(tmp_path / "results"),
        ], env=env, capture_output=True, text=True, timeout=300, cwd=tmp_path)
        output = job.stdout + job.stderr
        assert job.returncode == 0, output[-5000:]
        assert "succeeded" in output.lower(), output[-3000:]
        status = subprocess.run([str(BIN / "ray"), "job", "status", "--address", dashboard,
                                 submission], env=env, capture_output=True, text=True, timeout=60)
        assert "succeeded" in (status.stdout + status.stderr).lower()

        # Every trial: exactly one run, FINISHED, status tag finished, one value per epoch.
        api = f"{tracking}/api/2.0/mlflow"
        code, body = _http(f"{api}/experiments/get-by-name?experiment_name={SPACE['name']}")
        assert code == 200, body
        experiment_id = body["experiment"]["experiment_id"]
        code, body = _http(f"{api}/runs/search",
                           {"experiment_ids": [experiment_id], "max_results": 100})
        assert code == 200, body
        runs = body.get("runs", [])
        assert len(runs) == TRIALS, [r["info"]["run_name"] for r in runs]
        keys = []
        for run in runs:
            info = run["info"]
            tags = {t["key"]: t["value"] for t in run["data"].get("tags", [])}
            keys.append(tags[TAG_TRIAL_KEY])
            assert info["status"] == "FINISHED", (info["run_name"], info["status"])
            assert tags[TAG_STATUS] == STATUS_FINISHED, (info["run_name"], tags.get("error"))
            for metric in EPOCH_METRICS:
                code, body = _http(f"{api}/metrics/get-history?run_id={info['run_id']}"
                                   f"&metric_key={metric}")
                assert code == 200, body
                steps = sorted(m["step"] for m in body.get("metrics", []))
                assert steps == list(range(1, SPACE["epochs"] + 1)), (info["run_name"], metric)
        assert len(set(keys)) == TRIALS
        # Results and checkpoints went to the storage path the job was given.
        assert (tmp_path / "results" / SPACE["name"]).is_dir()
    finally:
        _stop_groups(started)
        _kill_leftovers([str(ray_tmp), str(tmp_path)])
        shutil.rmtree(ray_tmp, ignore_errors=True)
    time.sleep(1)
    assert not _pids_naming(str(ray_tmp)), "processes of the test cluster outlived it"


@pytest.mark.slow
def test_run_study_helper_runs_harness_from_the_repo(tmp_path):
    """`ray submit ... cluster/run_study.py run SPACE`: paths resolve in the repo, not the cwd."""
    env = {**os.environ, "LANGEVIN_REPO": str(ROOT), "HOME": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, str(CLUSTER / "run_study.py"), "run", "search_spaces/smoke.yaml",
         "--dry-run"], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "study 'smoke'" in result.stdout and "trial_key" in result.stdout
