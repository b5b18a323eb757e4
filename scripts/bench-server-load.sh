#!/usr/bin/env bash
# The file server under load, two builds side by side in one run: for each round, each server binary serves
# DIR on a loopback port and one `load` (the same binary for both) opens SESSIONS looping sessions of
# big_1080p.mp4 and measures for SECS seconds, reading the server's CPU and RSS from /proc.
#   scripts/bench-server-load.sh OLD_BIN NEW_BIN [DIR]
# Env: SESSIONS (1000), SECS (30), ROUNDS (2), LOAD_BIN (NEW_BIN). DIR defaults to /tmp/bigmedia
# (scripts/make-fixtures.sh DIR --big makes it). Prints each load summary; loopback only; stops what it starts.
set -euo pipefail
[ $# -ge 2 ] || { echo "usage: $0 OLD_BIN NEW_BIN [DIR]" >&2; exit 2; }
old=$1 new=$2 dir=${3:-/tmp/bigmedia}
sessions=${SESSIONS:-1000} secs=${SECS:-30} rounds=${ROUNDS:-2} load=${LOAD_BIN:-$new}
[ -s "$dir/big_1080p.mp4" ] || { echo "no $dir/big_1080p.mp4: run scripts/make-fixtures.sh $dir --big" >&2; exit 2; }
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null; pid=; }
trap cleanup EXIT
port=18730
for round in $(seq "$rounds"); do
  for side in old new; do
    bin=$old; [ "$side" = new ] && bin=$new
    port=$((port + 1))
    "$bin" serve --dir "$dir" --host 127.0.0.1 --port "$port" > /dev/null 2>&1 &
    pid=$!
    for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.1; done
    echo "== round $round, $side server ($bin)"
    "$load" load "rtsp://127.0.0.1:$port/big_1080p.mp4?play_count=0" --sessions "$sessions" \
      --duration "$secs" --server-pid "$pid" 2>&1 | tail -n 12
    cleanup
  done
done
