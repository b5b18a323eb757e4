#!/usr/bin/env bash
# A relay under load (docs/PERFORMANCE.md, "Relays"): our file server loops a ~4 Mb/s 1080p file as the
# upstream camera (its own process), `rtsp-toolkit relay` pulls it once, and `load` opens SESSIONS readers of
# the relayed path; the relay's CPU and RSS come from /proc (load --server-pid), its added latency (upstream
# packet received -> written to a reader) from its own histogram (serve --metrics).
# usage: scripts/bench-relay.sh [SESSIONS] [SECS]   (release build: cargo build --release -p rtsp-toolkit)
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-1000}
secs=${2:-30}
bin=target/release/rtsp-toolkit
media=/tmp/bigmedia
[ -f "$media/big_1080p.mp4" ] || scripts/make-fixtures.sh "$media" --big
up_port=18730 relay_port=18731 metrics=127.0.0.1:18732
"$bin" serve --dir "$media" --port "$up_port" > /tmp/bench-relay-upstream.log 2>&1 &
up=$!
"$bin" relay "rtsp://127.0.0.1:$up_port/big_1080p.mp4?play_count=0" --name cam --port "$relay_port" \
  --metrics "$metrics" > /tmp/bench-relay.log 2>&1 &
relay=$!
trap 'kill $up $relay 2>/dev/null || true' EXIT
# Live once the relay's client has the upstream's DESCRIBE.
for _ in $(seq 1 50); do
  grep -q '^' /tmp/bench-relay.log && curl -sf "http://$metrics/metrics" | grep -q '^rtsp_toolkit_live_paths 1' && break
  sleep 0.2
done
"$bin" load "rtsp://127.0.0.1:$relay_port/cam" --sessions "$n" --duration "$secs" --server-pid "$relay"
echo "== the relay's metrics at the end"
curl -sf "http://$metrics/metrics" | grep -E '^rtsp_toolkit_(live_|connections )' || true
echo "== the upstream's CPU: $(ps -o cputime= -p $up)"
