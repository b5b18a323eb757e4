#!/usr/bin/env bash
# The file server under load over each transport, side by side in one run: for each round, for each transport
# (tcp, then udp), BIN serves DIR on a loopback port and one `load` of the same binary opens SESSIONS looping
# sessions of big_1080p.mp4 over that transport and measures for SECS seconds, reading the server's CPU and RSS
# from /proc. Compare the two summaries of a round: holding real time, server CPU and RSS per session.
#   scripts/bench-transport-load.sh BIN [DIR]
# Env: SESSIONS (1000), SECS (30), ROUNDS (2), TRANSPORTS ("tcp udp"; also "tls": RTSPS, media interleaved on
# the TLS connection, with a self-signed certificate made by openssl and `load --insecure`). DIR defaults to /tmp/bigmedia
# (scripts/make-fixtures.sh DIR --big makes it). Loopback only; stops what it starts.
set -euo pipefail
[ $# -ge 1 ] || { echo "usage: $0 BIN [DIR]" >&2; exit 2; }
bin=$1 dir=${2:-/tmp/bigmedia}
sessions=${SESSIONS:-1000} secs=${SECS:-30} rounds=${ROUNDS:-2} transports=${TRANSPORTS:-tcp udp}
[ -s "$dir/big_1080p.mp4" ] || { echo "no $dir/big_1080p.mp4: run scripts/make-fixtures.sh $dir --big" >&2; exit 2; }
# Two UDP sockets per track and session on each side.
ulimit -n 65536 2>/dev/null || true
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null; pid=; }
trap cleanup EXIT
tmp=$(mktemp -d)
trap 'cleanup; rm -rf "$tmp"' EXIT
case " $transports " in *" tls "*)
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 -subj /CN=127.0.0.1 \
    -addext subjectAltName=IP:127.0.0.1 -keyout "$tmp/key.pem" -out "$tmp/cert.pem" 2>/dev/null ;;
esac
port=18830
for round in $(seq "$rounds"); do
  for transport in $transports; do
    port=$((port + 1))
    scheme=rtsp tls=() over=$transport extra=()
    if [ "$transport" = tls ]; then
      scheme=rtsps tls=(--tls-cert "$tmp/cert.pem" --tls-key "$tmp/key.pem") over=tcp extra=(--insecure)
    fi
    "$bin" serve --dir "$dir" --host 127.0.0.1 --port "$port" "${tls[@]}" > /dev/null 2>&1 &
    pid=$!
    for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.1; done
    echo "== round $round, $transport"
    "$bin" load "$scheme://127.0.0.1:$port/big_1080p.mp4?play_count=0" --sessions "$sessions" \
      --duration "$secs" --server-pid "$pid" --transport "$over" "${extra[@]}" 2>&1 | tail -n 13
    cleanup
  done
done
