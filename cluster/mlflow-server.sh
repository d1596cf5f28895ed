#!/usr/bin/env bash
# The study's MLflow tracking server on the Ray head node (started by head_start_ray_commands).
#
#   cluster/mlflow-server.sh start | stop | status | uri
#   (`uri` prints the address the server was started with, from ~/.mlflow/tracking_uri, not one
#    recomputed from the current settings)
#
# - Binds the head's PRIVATE address (never 0.0.0.0): workers of the cluster network can reach it,
#   the internet cannot; people reach it through an SSH tunnel (cluster/README.md).
# - Host-header checks stay on (--allowed-hosts: the private address and tunnel ends only).
# - Basic auth on by default (`--app-name basic-auth`): the admin password is read from a secret
#   file (created at random on first start, mode 600), handed to MLflow in its environment,
#   never on a command line, in a config file or in a log. The Ray job's driver on this node
#   authenticates through ~/.mlflow/credentials (mode 600), which MLflow clients read by themselves.
# - Backend: SQLite on the head's local disk (simple option), or PostgreSQL for a shared cluster:
#   put the URI (postgresql://user:password@host:5432/mlflow) in the file MLFLOW_BACKEND_URI_FILE.
# - Artifacts: served through the server (--artifacts-destination) on the cluster's shared
#   storage: MLFLOW_ARTIFACTS=s3://bucket/path, gs://bucket/path or an NFS path.
#
# Settings (environment, all optional):
#   MLFLOW_HOST                 bind address; default: the head's private IP (first of `hostname -I`)
#   MLFLOW_PORT                 5000
#   MLFLOW_HOME                 ~/mlflow: SQLite stores, server log, pid file
#   MLFLOW_ARTIFACTS            artifact destination; default: $MLFLOW_HOME/artifacts (head disk)
#   MLFLOW_BACKEND_URI_FILE     file with a database URI (mode 600); default: SQLite in MLFLOW_HOME
#   MLFLOW_AUTH                 1 (default): basic auth; 0: none (only for a loopback-bound server)
#   MLFLOW_ADMIN_PASSWORD_FILE  ~/.mlflow/admin_password (created when missing; the auth app's
#                               CSRF key goes beside it as flask_secret_key). Needs mlflow[auth].
#   MLFLOW_WORKERS              2
#   MLFLOW_AUTH_CACHE_TTL_S     300: a worker remembers a verified login this long (MLflow's own
#                               HMAC-keyed cache; wrong passwords are never cached, a password
#                               changed through MLflow is dropped at once by the worker that
#                               served the change, by the others within the TTL). 0 turns it off:
#                               then every request pays the password hash (PBKDF2, tens of ms by
#                               design), which made a study's tracking about 3x slower (issue 13).
#   MLFLOW_BIN                  mlflow (the one on PATH)
set -euo pipefail

cmd=${1:-start}
HOST=${MLFLOW_HOST:-$(hostname -I 2>/dev/null | awk '{print $1}')}
HOST=${HOST:-127.0.0.1}
PORT=${MLFLOW_PORT:-5000}
HOME_DIR=${MLFLOW_HOME:-$HOME/mlflow}
ARTIFACTS=${MLFLOW_ARTIFACTS:-$HOME_DIR/artifacts}
AUTH=${MLFLOW_AUTH:-1}
PASSWORD_FILE=${MLFLOW_ADMIN_PASSWORD_FILE:-$HOME/.mlflow/admin_password}
WORKERS=${MLFLOW_WORKERS:-2}
AUTH_CACHE_TTL_S=${MLFLOW_AUTH_CACHE_TTL_S:-300}
MLFLOW=${MLFLOW_BIN:-mlflow}
PID_FILE=$HOME_DIR/server.pid
LOG=$HOME_DIR/server.log
URI="http://$HOST:$PORT"
URI_FILE=$HOME/.mlflow/tracking_uri  # the address the server was started with (`uri` reads it)

running() { [[ -f $PID_FILE ]] && kill -0 "$(cat "$PID_FILE")" 2>/dev/null; }

stop() {
  if running; then
    local pid; pid=$(cat "$PID_FILE")
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -KILL -- "-$pid" 2>/dev/null || true
    echo "mlflow server (pid $pid) stopped"
  fi
  rm -f "$PID_FILE"
}

start() {
  if [[ $AUTH != 1 && $HOST != 127.* && $HOST != localhost ]]; then
    echo "refusing to serve MLflow on $HOST without authentication (set MLFLOW_AUTH=1)" >&2
    exit 2
  fi
  stop >/dev/null
  umask 077
  mkdir -p "$HOME_DIR" "$HOME/.mlflow"
  [[ $ARTIFACTS == *://* ]] || mkdir -p "$ARTIFACTS"
  local env=(MLFLOW_DISABLE_TELEMETRY=true)
  if [[ -n ${MLFLOW_BACKEND_URI_FILE:-} ]]; then
    # In the environment, not on the command line: `ps` shows command lines to every user.
    env+=("MLFLOW_BACKEND_STORE_URI=$(<"$MLFLOW_BACKEND_URI_FILE")")
  else
    env+=("MLFLOW_BACKEND_STORE_URI=sqlite:///$HOME_DIR/mlflow.db")
  fi
  local args=(server --host "$HOST" --port "$PORT" --workers "$WORKERS"
              --serve-artifacts --artifacts-destination "$ARTIFACTS"
              --allowed-hosts "$HOST:$PORT,localhost:*,127.0.0.1:*")
  if [[ $AUTH == 1 ]]; then
    if [[ ! -s $PASSWORD_FILE ]]; then
      mkdir -p "$(dirname "$PASSWORD_FILE")"
      python3 -c 'import secrets; print(secrets.token_urlsafe(24))' > "$PASSWORD_FILE"
    fi
    chmod 600 "$PASSWORD_FILE"
    # The key the auth app signs its CSRF tokens with: a secret too, kept beside the password.
    local key_file; key_file="$(dirname "$PASSWORD_FILE")/flask_secret_key"
    [[ -s $key_file ]] || python3 -c 'import secrets; print(secrets.token_hex(32))' > "$key_file"
    chmod 600 "$key_file"
    cat > "$HOME_DIR/basic_auth.ini" <<INI
[mlflow]
default_permission = READ
database_uri = sqlite:///$HOME_DIR/basic_auth.db
admin_username = admin
authorization_function = mlflow.server.auth:authenticate_request_basic_auth
auth_cache_ttl_seconds = $AUTH_CACHE_TTL_S
INI
    env+=("MLFLOW_AUTH_CONFIG_PATH=$HOME_DIR/basic_auth.ini"
          "MLFLOW_AUTH_ADMIN_PASSWORD=$(<"$PASSWORD_FILE")"
          "MLFLOW_FLASK_SERVER_SECRET_KEY=$(<"$key_file")")
    args+=(--app-name basic-auth)
    # MLflow clients on this node (the Ray job's driver) read this file by themselves.
    printf '[mlflow]\nmlflow_tracking_username = admin\nmlflow_tracking_password = %s\n' \
      "$(<"$PASSWORD_FILE")" > "$HOME/.mlflow/credentials"
    chmod 600 "$HOME/.mlflow/credentials"
  fi
  echo "$URI" > "$URI_FILE"
  # Own session (process group) so `stop` ends the server and its workers together.
  env "${env[@]}" setsid "$MLFLOW" "${args[@]}" >"$LOG" 2>&1 </dev/null &
  echo $! > "$PID_FILE"
  for _ in $(seq 120); do
    if python3 - "$URI/health" <<'PY' 2>/dev/null
import sys, urllib.request
sys.exit(0 if urllib.request.urlopen(sys.argv[1], timeout=2).status == 200 else 1)
PY
    then
      echo "mlflow server at $URI (pid $(cat "$PID_FILE"), auth: $([[ $AUTH == 1 ]] && echo basic || echo none), artifacts: $ARTIFACTS)"
      return 0
    fi
    running || { echo "mlflow server exited; last lines of $LOG:" >&2; tail -n 20 "$LOG" >&2; exit 1; }
    sleep 1
  done
  echo "mlflow server did not answer $URI/health within 120 s; see $LOG" >&2
  exit 1
}

case $cmd in
  start) start ;;
  stop) stop ;;
  status) if running; then echo "running: $(<"$URI_FILE") (pid $(cat "$PID_FILE"))"; else echo "not running"; exit 3; fi ;;
  uri)
    if [[ -s $URI_FILE ]]; then cat "$URI_FILE"
    else echo "no MLflow server was started on this node ($URI_FILE is missing): $0 start" >&2; exit 3
    fi ;;
  *) echo "usage: $0 start|stop|status|uri" >&2; exit 2 ;;
esac
