#!/usr/bin/env bash
# Install the third-party RTSP peers the tests talk to: FFmpeg (ffmpeg/ffprobe) and the GStreamer
# RTSP server with its Python bindings. Debian 12 packages; idempotent: apt runs only if something is missing.
set -euo pipefail

# GstRtspServer-1.0 typelib: gir1.2-gst-rtsp-server-1.0. Gst-1.0 typelib: gir1.2-gstreamer-1.0.
# GstPbutils-1.0 and GstRtsp-1.0 typelibs: gir1.2-gst-plugins-base-1.0 (both are dependencies of
# gir1.2-gst-rtsp-server-1.0, listed anyway so the list says what the server script imports).
PACKAGES=(
  ffmpeg
  python3-gi
  gir1.2-gstreamer-1.0
  gir1.2-gst-plugins-base-1.0
  gir1.2-gst-rtsp-server-1.0
  gstreamer1.0-plugins-base
  gstreamer1.0-plugins-good
  gstreamer1.0-plugins-bad
  gstreamer1.0-plugins-ugly
  gstreamer1.0-libav
  gstreamer1.0-tools
  # Video decode (cargo feature `decode`: ffmpeg-next builds against FFmpeg's headers; bindgen needs libclang).
  libavcodec-dev
  libavformat-dev
  libavutil-dev
  libswscale-dev
  pkg-config
  clang
  libclang-dev
  # Audio playback (cpal over ALSA; features `playback` and `viewer`).
  libasound2-dev
  # The viewer's test (cli/tests/view.rs): a virtual X server, screenshots, closing the window.
  xvfb
  x11-apps
  imagemagick
  python3-xlib
  # Multicast tests run in a network namespace of their own (conformance::netns): unshare and ip.
  util-linux
  iproute2
  # Scale-out test (cli/tests/scale_out.rs): two `serve` behind HAProxy in TCP mode.
  haproxy
)

missing=()
for pkg in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$pkg")
  fi
done

if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Verify: Debian's python (not a pyenv one) must see the GStreamer RTSP server bindings.
/usr/bin/python3 - <<'PY'
import gi
gi.require_version("Gst", "1.0")
gi.require_version("GstRtsp", "1.0")
gi.require_version("GstRtspServer", "1.0")
gi.require_version("GstPbutils", "1.0")
from gi.repository import Gst, GstRtspServer, GstPbutils  # noqa: F401
Gst.init(None)
print(f"gstreamer {Gst.version_string().split()[-1]}, python3-gi {gi.__version__}")
PY
echo "$(ffmpeg -version | head -n1 | cut -d' ' -f1-3)"
