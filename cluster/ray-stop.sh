#!/usr/bin/env bash
# Stops this cluster's Ray on this node and nothing else (the start commands run it before
# `ray start`, where Ray's own configs run `ray stop`).
#
#   RAY_TMPDIR=/tmp/langevin-1000 cluster/ray-stop.sh      (the setup commands export RAY_TMPDIR)
#
# `ray stop` stops every Ray process it may signal on the host: on a shared host or account,
# another user's cluster too. This stops only the Ray whose temp dir is $RAY_TMPDIR/ray: this
# user's processes whose command line names a session there (GCS, raylet, dashboard, monitors) or
# the GCS address Ray saved there (the head's Ray Client server), and every process below them
# (workers and agents, which Ray renames `ray::...`). SIGTERM first, SIGKILL to what is left after
# RAY_STOP_GRACE_S seconds (16, as `ray stop`).
set -uo pipefail

temp="${RAY_TMPDIR:?RAY_TMPDIR is not set (the setup commands put it in ~/.bashrc)}/ray"
grace=${RAY_STOP_GRACE_S:-16}
pattern="$temp/session_"
[[ -s $temp/ray_current_cluster ]] && pattern+="|--address=$(<"$temp/ray_current_cluster")( |\$)"

found=()
level=($(pgrep -u "$(id -u)" -f -- "$pattern"))
while ((${#level[@]})); do
  found+=("${level[@]}")
  below=()
  for pid in "${level[@]}"; do below+=($(pgrep -P "$pid")); done
  level=("${below[@]}")
done
if ((${#found[@]} == 0)); then
  echo "no Ray under $temp"
  exit 0
fi

kill -TERM "${found[@]}" 2>/dev/null
alive=("${found[@]}")
for _ in $(seq "$grace"); do
  alive=()
  for pid in "${found[@]}"; do kill -0 "$pid" 2>/dev/null && alive+=("$pid"); done
  ((${#alive[@]})) || break
  sleep 1
done
((${#alive[@]})) && kill -KILL "${alive[@]}" 2>/dev/null
echo "stopped the Ray under $temp (${#found[@]} processes)"
