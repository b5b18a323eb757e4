#!/usr/bin/env bash
# Stops the server process for a while under load, as a machine that deschedules it would, and shows how the
# sessions come through (docs/RELIABILITY.md, "The stall"). Nothing here needs root.
#
#   scripts/stall.sh                   # defaults below
#
# Runs `rtsp-toolkit serve` ($SERVER_BIN) on $DIR, `load` with $SESSIONS looping sessions of $BIG and one
# `probe --json` of $SMALL (both $BIN), then at $AT seconds sends SIGSTOP to the server and SIGCONT $STOP_FOR
# seconds later. Prints load's summary, the probe's gaps and its end, and the server's warnings.
#
# Environment (defaults): BIN=target/release/rtsp-toolkit SERVER_BIN=$BIN DIR=/tmp/bigmedia PORT=18810
#   SESSIONS=200 BIG=big_1080p.mp4 SMALL=h264_aac.mp4 AT=15 STOP_FOR=4.5 DURATION=40 OUT=/tmp/stall
# Make the media with `scripts/make-fixtures.sh /tmp/bigmedia --big`.
set -euo pipefail

BIN=${BIN:-target/release/rtsp-toolkit}
SERVER_BIN=${SERVER_BIN:-$BIN}
DIR=${DIR:-/tmp/bigmedia}
PORT=${PORT:-18810}
SESSIONS=${SESSIONS:-200}
BIG=${BIG:-big_1080p.mp4}
SMALL=${SMALL:-h264_aac.mp4}
AT=${AT:-15}
STOP_FOR=${STOP_FOR:-4.5}
DURATION=${DURATION:-40}
OUT=${OUT:-/tmp/stall}
mkdir -p "$OUT"

"$SERVER_BIN" serve --dir "$DIR" --port "$PORT" >"$OUT/serve.out" 2>"$OUT/serve.err" &
serve=$!
cleanup() {
    kill -CONT "$serve" 2>/dev/null || true
    kill "$serve" 2>/dev/null || true
}
trap cleanup EXIT
for _ in $(seq 50); do
    grep -q '^listening' "$OUT/serve.out" 2>/dev/null && break
    sleep 0.1
done
base=rtsp://127.0.0.1:$PORT
"$BIN" load "$base/$BIG?play_count=0" --sessions "$SESSIONS" --duration "$DURATION" --server-pid "$serve" \
    >"$OUT/load.out" 2>&1 &
load=$!
"$BIN" probe "$base/$SMALL?play_count=0" --duration "$((DURATION + 2))" --json >"$OUT/probe.jsonl" 2>"$OUT/probe.err" &
probe=$!
sleep "$AT"
kill -STOP "$serve"
echo "server stopped at $(date -u +%T) for ${STOP_FOR}s"
sleep "$STOP_FOR"
kill -CONT "$serve"
wait "$load" || true
wait "$probe" || true

echo "== load ($SESSIONS sessions of $BIG)"
cat "$OUT/load.out"
echo "== probe ($SMALL)"
python3 - "$OUT/probe.jsonl" <<'EOF'
import json, sys
ticks, last = [], None
for line in open(sys.argv[1]):
    try:
        o = json.loads(line)
    except ValueError:
        continue
    if o.get("type") == "rtp":
        ticks.append(o["recv_tick_s"])
    last = o
gaps = [(a, b) for a, b in zip(ticks, ticks[1:]) if b - a > 0.5]
for a, b in gaps:
    after = sum(1 for t in ticks if b <= t <= b + 0.2)
    print(f"gap {b - a:.2f} s at {a:.2f} s; {after} packets within 200 ms after it")
if last is not None:
    print("end:", "error: " + str(last.get("error")) if last.get("error") else "clean", f"after {last.get('session_elapsed_s', 0):.1f} s")
EOF
echo "== server warnings"
(grep -c 'fell behind' "$OUT/serve.err" || true) | sed 's/^/fell-behind warnings: /'
(grep -c 'not reading' "$OUT/serve.err" || true) | sed 's/^/clients dropped as not reading: /'
