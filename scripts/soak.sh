#!/usr/bin/env bash
# Endurance (soak) run, the hour-long version of the CI soak test
# (conformance/tests/hostile_client.rs, `soak_*`). See docs/RELIABILITY.md.
#
#   scripts/soak.sh [SECONDS]          # default 3600
#   scripts/soak.sh --analyze          # summarize the logs of a finished (or running) run
#
# What it runs, in the background of this script:
#   1. `rtsp-toolkit serve` on $DIR, with every track's RTP sequence number and
#      timestamp starting just below the wrap (--initial-rtp), so that both
#      wrap-arounds are crossed in the first minute;
#   2. soak 1: `rtsp-toolkit load` with $SESSIONS looping sessions of $BIG for
#      SECONDS, one progress line a minute (server RSS and CPU, errors, loss,
#      discontinuities), then its summary;
#   3. soak 2: `rtsp-toolkit probe --json` on one looping stream of $SMALL for
#      SECONDS (our client, frames assembled), and the probe's RSS every
#      $SAMPLE seconds.
# The server is stopped when both are done. Nothing here needs root.
#
# Environment (defaults): BIN=target/release/rtsp-toolkit DIR=/tmp/bigmedia
#   PORT=18800 SESSIONS=200 INITIAL_RTP=65000:4294000000 OUT=/tmp SAMPLE=60
#   BIG=big_1080p.mp4 SMALL=h264_aac.mp4
#   NICE=0  niceness of all three processes (negative needs root): on a machine
#           shared with compile jobs, NICE=-5 keeps them from starving the run
#   SERVE_LOG=info  the server's log level (info: one line per request and
#           per closed connection with its reason, about 400 lines a minute)
# Make the media with `scripts/make-fixtures.sh /tmp/bigmedia --big` and the
# binary with `cargo build --release -p rtsp-toolkit`.
#
# Logs (in $OUT):
#   soak-server.log        load's progress lines ("report: ...") and summary
#   soak-serve.log         the server's own stdout/stderr (warnings)
#   soak-client.jsonl      the probe's JSON lines (one per RTSP exchange, RTP packet, frame; report last)
#   soak-client-rss.log    "unix_time elapsed_s rss_kib" of the probe process
#   soak-pids              pids of serve, load, probe, sampler
set -euo pipefail

BIN=${BIN:-target/release/rtsp-toolkit}
DIR=${DIR:-/tmp/bigmedia}
PORT=${PORT:-18800}
SESSIONS=${SESSIONS:-200}
INITIAL_RTP=${INITIAL_RTP:-65000:4294000000}
OUT=${OUT:-/tmp}
SAMPLE=${SAMPLE:-60}
BIG=${BIG:-big_1080p.mp4}
SMALL=${SMALL:-h264_aac.mp4}
NICE=${NICE:-0}
SERVE_LOG=${SERVE_LOG:-info}

analyze() {
    echo "== soak 1: $SESSIONS sessions of $BIG (load) =="
    if [[ -f $OUT/soak-server.log ]]; then
        echo "RSS curve (elapsed_s server_rss_kib server_cpu_pct holding/sessions errors lost gaps jumps max_gap_ms):"
        awk '$1=="report:" && $2 ~ /^[0-9]/ {print "  " $2, $12, $13, $4 "/" $3, $6, $7, $8, $9, ($14 == "" ? "-" : $14)}' "$OUT/soak-server.log"
        grep -v '^report:' "$OUT/soak-server.log" || true
    else
        echo "  (no $OUT/soak-server.log)"
    fi
    echo "== soak 2: one stream of $SMALL (probe) =="
    if [[ -f $OUT/soak-client-rss.log ]]; then
        echo "probe RSS (elapsed_s rss_kib):"
        awk '{print "  " $2, $3}' "$OUT/soak-client-rss.log"
    fi
    if [[ -f $OUT/soak-client.jsonl ]]; then
        python3 - "$OUT/soak-client.jsonl" <<'EOF'
import json, sys
seq_prev, ext_prev, gaps, back, wraps_seq, frames = {}, {}, {}, {}, {}, {}
closed = report = None
losses = warnings = 0
with open(sys.argv[1]) as f:
    for line in f:
        try:
            o = json.loads(line)
        except ValueError:
            continue  # a line cut by a running probe
        t = o.get("type")
        if t == "rtp":
            k, s = o["track"], o["seq"]
            p = seq_prev.get(k)
            if p is not None:
                if s != (p + 1) % 65536:
                    gaps[k] = gaps.get(k, 0) + 1
                elif s == 0:
                    wraps_seq[k] = wraps_seq.get(k, 0) + 1
            seq_prev[k] = s
        elif t in ("video", "audio"):
            k, e = o["track"], o["extended_timestamp"]
            frames[k] = frames.get(k, 0) + 1
            # Audio must be strictly increasing; video may step back a little (B-frames).
            p = ext_prev.get(k)
            if p is not None and (e <= p if t == "audio" else e < p - 45000):
                back[k] = back.get(k, 0) + 1
            ext_prev[k] = max(e, p) if p is not None else e
        elif t == "loss":
            losses += o["lost"]
        elif t == "warning":
            warnings += 1
        elif t == "closed":
            closed = o
        elif t == "report":
            report = o
print(f"  frames per track {frames}; sequence gaps {gaps or 0}; timestamp steps back {back or 0}")
print(f"  sequence wraps crossed {wraps_seq}; last extended timestamps {ext_prev} (> 4294967296: the timestamp wrap was crossed)")
print(f"  packets lost {losses}; warnings {warnings}")
if closed:
    print(f"  closed after {closed['session_elapsed_s']:.0f} s, error: {closed['error']}")
if report:
    for tr in report.get("tracks", []):
        print(f"  track {tr['track']} {tr['codec']}: {tr['frames']} frames, lost {tr['lost']}, damaged {tr['damaged_frames']}, "
              f"max frame gap {tr['max_frame_gap_s']} s, max jitter {tr['max_jitter_s']} s")
EOF
    fi
}

if [[ ${1:-} == --analyze ]]; then
    analyze
    exit 0
fi

SECS=${1:-3600}
[[ -x $BIN ]] || { echo "no $BIN: cargo build --release -p rtsp-toolkit" >&2; exit 2; }
for f in "$BIG" "$SMALL"; do
    [[ -f $DIR/$f ]] || { echo "no $DIR/$f: scripts/make-fixtures.sh $DIR --big" >&2; exit 2; }
done

RUST_LOG=$SERVE_LOG nice -n "$NICE" "$BIN" serve --dir "$DIR" --port "$PORT" --initial-rtp "$INITIAL_RTP" >"$OUT/soak-serve.log" 2>&1 &
SERVE=$!
trap 'kill $SERVE 2>/dev/null || true' EXIT
for _ in $(seq 50); do
    grep -q '^listening' "$OUT/soak-serve.log" 2>/dev/null && break
    sleep 0.1
done
grep -q '^listening' "$OUT/soak-serve.log" || { cat "$OUT/soak-serve.log" >&2; exit 1; }

nice -n "$NICE" "$BIN" probe "rtsp://127.0.0.1:$PORT/$SMALL?play_count=0" --duration "$SECS" --json \
    >"$OUT/soak-client.jsonl" 2>"$OUT/soak-client.err" &
PROBE=$!
(
    start=$(date +%s)
    while kill -0 "$PROBE" 2>/dev/null; do
        rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$PROBE/status" 2>/dev/null || true)
        [[ -n $rss ]] && echo "$(date +%s) $(($(date +%s) - start)) $rss"
        sleep "$SAMPLE"
    done
) >"$OUT/soak-client-rss.log" &
SAMPLER=$!

nice -n "$NICE" "$BIN" load "rtsp://127.0.0.1:$PORT/$BIG?play_count=0" --sessions "$SESSIONS" --duration "$SECS" \
    --server-pid "$SERVE" --report-every "$SAMPLE" >"$OUT/soak-server.log" 2>&1 &
LOAD=$!
echo "serve $SERVE load $LOAD probe $PROBE sampler $SAMPLER" | tee "$OUT/soak-pids"
echo "started $(date -u +%FT%TZ), ends in about $((SECS / 60)) min; logs in $OUT/soak-*" >&2

load_rc=0
probe_rc=0
wait "$LOAD" || load_rc=$?
wait "$PROBE" || probe_rc=$?
wait "$SAMPLER" || true
kill "$SERVE" 2>/dev/null || true
wait "$SERVE" || true
trap - EXIT
echo "load exit $load_rc, probe exit $probe_rc" | tee -a "$OUT/soak-pids"
analyze
[[ $load_rc == 0 && $probe_rc == 0 ]]
