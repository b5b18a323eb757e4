#!/usr/bin/env bash
# The toolkit end to end on a machine with no camera: serve the bundled fixtures with a real RTSP server
# on a free loopback port, then run the client on one of them and print one line per event.
#   scripts/demo.sh [FILE_IN_fixtures/media] [SECONDS]        (defaults: h264_aac.mp4, 3)
# Or point the client at any URL:  cargo run -p rtsp-toolkit-tokio --example events -- rtsp://... [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
name=${1:-h264_aac.mp4}; secs=${2:-3}
if ! /usr/bin/python3 -c 'import gi; gi.require_version("GstRtspServer", "1.0")' 2>/dev/null; then
  scripts/peers/install.sh
fi
cargo build --release -q -p rtsp-toolkit-tokio --example events
port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
scripts/peers/serve-bg.sh "$port" fixtures/media >/dev/null
trap 'scripts/peers/stop-bg.sh "$port" >/dev/null' EXIT
target/release/examples/events "rtsp://127.0.0.1:$port/$name" "$secs" | awk '
  /^(rtp|video|audio) / { k = $1 " " $2; n[k]++; if (n[k] > 3) next }   # first few per kind and track; count the rest
  { print }
  END { for (k in n) printf "%-28s %d in all\n", k ":", n[k] }'
