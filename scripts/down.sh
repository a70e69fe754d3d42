#!/usr/bin/env bash
# Stops the API and the worker started by `npm run up`. QEMU VMs keep running; a worker started
# again re-adopts them.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
for name in worker api; do
  pidfile="$ROOT/.iaas/run/$name.pid"
  if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
    pid=$(cat "$pidfile")
    kill -TERM "$pid"
    for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
    echo "stopped $name (pid $pid)"
  else
    echo "$name is not running"
  fi
  rm -f "$pidfile"
done
