#!/usr/bin/env bash
# The client's CPU per RTP packet over RTSPS against plain RTSP (TCP interleaved), side by side in one run: BIN
# serves DIR on two loopback ports (plain, and TLS with a throwaway self-signed certificate made by openssl), then
# for each round one `probe` of BIN plays big_1080p.mp4 (looped) for SECS seconds over each, and the probe process's CPU
# (user + system, from getrusage) is divided by the RTP packets its report counts. The server paces in real time,
# so both probes get the same packets; the difference is the client's TLS (decrypt, record parsing).
#   scripts/bench-tls-client.sh BIN [DIR]
# Env: SECS (20), ROUNDS (3). DIR defaults to /tmp/bigmedia (scripts/make-fixtures.sh DIR --big makes it).
# Loopback only; stops what it starts.
set -euo pipefail
[ $# -ge 1 ] || { echo "usage: $0 BIN [DIR]" >&2; exit 2; }
bin=$1 dir=${2:-/tmp/bigmedia}
secs=${SECS:-20} rounds=${ROUNDS:-3}
[ -s "$dir/big_1080p.mp4" ] || { echo "no $dir/big_1080p.mp4: run scripts/make-fixtures.sh $dir --big" >&2; exit 2; }
tmp=$(mktemp -d)
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null; pid=; rm -rf "$tmp"; }
trap cleanup EXIT
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$tmp/key.pem" -out "$tmp/cert.pem" \
  -days 2 -subj /CN=127.0.0.1 -addext "subjectAltName=IP:127.0.0.1" -addext "basicConstraints=critical,CA:FALSE" \
  2>/dev/null
"$bin" serve --dir "$dir" --port 18840 --tls-port 18841 --tls-cert "$tmp/cert.pem" --tls-key "$tmp/key.pem" \
  > /dev/null 2>&1 &
pid=$!
for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/18841) 2>/dev/null && break; sleep 0.1; done
# One probe: prints "cpu_s packets us_per_packet".
measure() {
  python3 - "$@" <<'PY'
import re, resource, subprocess, sys
out = subprocess.run(sys.argv[1:], capture_output=True, text=True).stdout
ru = resource.getrusage(resource.RUSAGE_CHILDREN)
cpu = ru.ru_utime + ru.ru_stime
packets = sum(int(n) for n in re.findall(r"^\s+rtp\s+(\d+) packets", out, re.M))
print(f"{cpu:.3f} {packets} {cpu / max(packets, 1) * 1e6:.2f}")
PY
}
echo "round transport cpu_s rtp_packets client_us_per_packet"
for round in $(seq "$rounds"); do
  echo "$round tcp $(measure "$bin" probe "rtsp://127.0.0.1:18840/big_1080p.mp4?play_count=0" --duration "$secs" --quiet)"
  echo "$round tls $(measure "$bin" probe "rtsps://127.0.0.1:18841/big_1080p.mp4?play_count=0" --duration "$secs" --quiet \
    --tls-fingerprint "$(openssl x509 -in "$tmp/cert.pem" -noout -fingerprint -sha256 | cut -d= -f2)")"
done
