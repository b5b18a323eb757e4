#!/usr/bin/env bash
# Runs every check and test of the workspace. Needs the test peers (scripts/peers/install.sh, root).
# This is the README's test command; .ci/run installs what it needs, then calls it.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}
echo "== cargo fmt --check"
cargo fmt --all --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
# The core crate alone builds without its `serde` feature (the workspace build above turns it on through the CLI).
echo "== core without serde"
cargo clippy -p rtsp-toolkit-core --all-targets --locked -- -D warnings
cargo test -p rtsp-toolkit-core --lib --locked
# The published libraries' docs: every public item documented (#![warn(missing_docs)]) and every link resolved.
echo "== rustdoc"
RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --locked -p rtsp-toolkit-core -p rtsp-toolkit-driver \
  -p rtsp-toolkit-tokio -p rtsp-toolkit-smol -p rtsp-toolkit-blocking -p rtsp-toolkit-media
echo "== import loops"
python3 scripts/import-cycles.py core/src cli/src driver/src media/src runtime-tokio/src runtime-smol/src blocking/src
echo "== cargo test"
# Two test threads: the GStreamer peers and the clients share the machine's two cores. (An
# environment variable, not `-- --test-threads`: the criterion bench target takes no such flag.)
RUST_TEST_THREADS=2 cargo test --workspace --all-targets --locked
echo "== doc tests"
cargo test --workspace --doc --locked
# The optional features (video decode through FFmpeg, the viewer with cpal audio): not in the workspace build
# above, because they need the apt packages of scripts/peers/install.sh. Only what the features add is tested
# again: the media crate's unit and doc tests, the CLI's binary and its decode and viewer (Xvfb) tests.
echo "== features: decode, viewer"
cargo clippy -p rtsp-toolkit-media -p rtsp-toolkit --all-targets --locked \
  --features rtsp-toolkit/viewer,rtsp-toolkit-media/decode,rtsp-toolkit-media/playback -- -D warnings
cargo test -p rtsp-toolkit-media --lib --locked --features decode,playback
cargo test -p rtsp-toolkit-media --doc --locked --features decode,playback
RUST_TEST_THREADS=2 cargo test -p rtsp-toolkit --locked --features viewer --bins --test decode --test view --test onvif_aac
