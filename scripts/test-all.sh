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
echo "== cargo test"
# Two test threads: the GStreamer peers and the clients share the machine's two cores. (An
# environment variable, not `-- --test-threads`: the criterion bench target takes no such flag.)
RUST_TEST_THREADS=2 cargo test --workspace --all-targets --locked
echo "== doc tests"
cargo test --workspace --doc --locked
