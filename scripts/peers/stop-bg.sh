#!/usr/bin/env bash
# Stop the server that serve-bg.sh started on PORT: only the PID in its pid file (TERM, then KILL after 3 s).
set -u
port=${1:?usage: stop-bg.sh PORT}
pidfile=/tmp/rtsp-toolkit-peer-$port.pid
if [ ! -f "$pidfile" ]; then
  echo "no peer started on port $port"
  exit 0
fi
pid=$(cat "$pidfile")
if kill "$pid" 2>/dev/null; then
  for _ in $(seq 30); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -9 "$pid" 2>/dev/null || true
fi
rm -f "$pidfile"
echo "stopped peer on port $port (pid $pid)"
