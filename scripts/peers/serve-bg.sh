#!/usr/bin/env bash
# Start gst-rtsp-server.py in the background (own session via setsid) and wait until it is ready.
#   serve-bg.sh PORT DIR [--user U --password P [--auth basic|digest]]
# PID file /tmp/rtsp-toolkit-peer-PORT.pid, log /tmp/rtsp-toolkit-peer-PORT.log; stop with stop-bg.sh PORT.
# Prints the served URLs once the server has printed "ready" (waits at most 15 s).
set -euo pipefail
[ $# -ge 2 ] || { echo "usage: $0 PORT DIR [--user U --password P [--auth basic|digest]]" >&2; exit 2; }
port=$1; dir=$2; shift 2
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
pidfile=/tmp/rtsp-toolkit-peer-$port.pid
log=/tmp/rtsp-toolkit-peer-$port.log

if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
  echo "a peer is already running on port $port (pid $(cat "$pidfile"))" >&2
  exit 1
fi

setsid /usr/bin/python3 "$here/gst-rtsp-server.py" --dir "$dir" --port "$port" "$@" \
  </dev/null >"$log" 2>&1 &
pid=$!
echo "$pid" >"$pidfile"

for _ in $(seq 150); do            # 150 x 0.1 s = 15 s
  if grep -qx ready "$log"; then
    grep '^rtsp://' "$log" || true
    exit 0
  fi
  kill -0 "$pid" 2>/dev/null || break
  sleep 0.1
done

echo "gst RTSP server on port $port did not become ready; log:" >&2
cat "$log" >&2
kill "$pid" 2>/dev/null || true
rm -f "$pidfile"
exit 1
