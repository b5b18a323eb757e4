#!/usr/bin/env bash
# End-to-end client benchmark (conformance/benches/client.rs), before against after in one run.
#
#   scripts/bench-client.sh          # the working tree only
#   scripts/bench-client.sh REV      # the working tree ("head") and REV ("rev"), alternately
#
# Builds the bench of the working tree and, with REV, the same bench file at REV in a temporary git worktree
# (the working tree's conformance/benches/client.rs is copied in, so both sides measure with the same code;
# a missing [[bench]] entry is added to REV's conformance/Cargo.toml). Then runs the binaries alternately,
# BENCH_ROUNDS times each (the order swapping every round), each run its summary only (no criterion) for
# CLIENT_BENCH_SECS seconds, prints every summary, and at the end a table of medians over the runs.
#
# Environment: BENCH_ROUNDS (default 3), CLIENT_BENCH_SECS (default 20), BENCH_DIR (default
# /tmp/rtsp-toolkit-bench-client: the shared cargo target dir, the worktree and the logs go there; the
# target dir is kept for the next run, the worktree is removed).
set -euo pipefail

repo=$(git -C "$(dirname "$0")/.." rev-parse --show-toplevel)
rev=${1:-}
rounds=${BENCH_ROUNDS:-3}
secs=${CLIENT_BENCH_SECS:-20}
base=${BENCH_DIR:-/tmp/rtsp-toolkit-bench-client}
export CARGO_TARGET_DIR=$base/target
mkdir -p "$base"
bench=conformance/benches/client.rs

wt=
cleanup() {
  if [[ -n $wt ]]; then
    git -C "$repo" worktree remove --force "$wt" 2>/dev/null || rm -rf "$wt"
    git -C "$repo" worktree prune
  fi
}
trap cleanup EXIT

# Builds the bench in directory $1; prints the path of its binary.
build() {
  local out
  out=$(cd "$1" && cargo bench -p rtsp-toolkit-conformance --bench client --no-run \
    --message-format=json-render-diagnostics) || return 1
  # The compiler-artifact line of the bench target carries "executable":"<path>".
  grep '"kind":\["bench"\]' <<<"$out" | grep '"name":"client"' |
    grep -o '"executable":"[^"]*"' | tail -1 | sed 's/^"executable":"//; s/"$//'
}

echo "== building the working tree ($(git -C "$repo" rev-parse --short HEAD)$(git -C "$repo" diff --quiet HEAD -- || echo ', with changes'))"
head_exe=$(build "$repo")
[[ -x $head_exe ]] || { echo "no bench binary for the working tree" >&2; exit 1; }
labels=(head)
exes=("$head_exe")

if [[ -n $rev ]]; then
  rev_sha=$(git -C "$repo" rev-parse --verify "$rev^{commit}")
  wt=$base/rev.$$
  git -C "$repo" worktree add --detach "$wt" "$rev_sha" >/dev/null
  if [[ ! -f $wt/$bench ]]; then
    echo "== $rev has no $bench: copying it in"
  elif ! cmp -s "$repo/$bench" "$wt/$bench"; then
    echo "== $rev has another version of $bench: using the working tree's, so both sides measure alike"
  fi
  cp "$repo/$bench" "$wt/$bench"
  if ! grep -q '^name = "client"' "$wt/conformance/Cargo.toml"; then
    echo "== adding the [[bench]] entry to $rev's conformance/Cargo.toml"
    # Before [lints] (a [[bench]] table must not land inside another table).
    awk '/^\[lints\]/ && !done { print "[[bench]]\nname = \"client\"\nharness = false\n"; done = 1 } { print }
         END { if (!done) print "\n[[bench]]\nname = \"client\"\nharness = false" }' \
      "$wt/conformance/Cargo.toml" >"$wt/conformance/Cargo.toml.new"
    mv "$wt/conformance/Cargo.toml.new" "$wt/conformance/Cargo.toml"
  fi
  echo "== building $rev (${rev_sha:0:7}) in $wt"
  rev_exe=$(build "$wt")
  [[ -x $rev_exe ]] || { echo "no bench binary for $rev" >&2; exit 1; }
  # The binary stays in the target dir; the worktree is not needed to run it.
  cleanup
  wt=
  labels+=(rev)
  exes+=("$rev_exe")
fi

log=$base/results.$$.log
: >"$log"
echo "== load before: $(cat /proc/loadavg); $(nproc) CPUs"
for ((r = 0; r < rounds; r++)); do
  for ((k = 0; k < ${#exes[@]}; k++)); do
    i=$(((r + k) % ${#exes[@]}))
    echo
    echo "== round $((r + 1))/$rounds: ${labels[$i]}"
    CLIENT_BENCH_SUMMARY=1 CLIENT_BENCH_SECS=$secs "${exes[$i]}" --bench | tee "$base/run.out"
    sed -n "s/^RESULT /${labels[$i]} /p" "$base/run.out" >>"$log"
  done
done
echo
echo "== load after: $(cat /proc/loadavg)"

# Medians over the runs, per side: throughput (MB/s of frame data), the client's CPU per RTP packet (process
# minus the in-process server; and the main thread alone), and throughput over retina's in the same runs.
echo
echo "== medians over $rounds run(s) per side"
awk -v sides="${labels[*]}" '
  function med(list,   n, a, i, j, t) {
    n = split(list, a, " ")
    for (i = 2; i <= n; i++) for (j = i; j > 1 && a[j - 1] + 0 > a[j] + 0; j--) { t = a[j]; a[j] = a[j - 1]; a[j - 1] = t }
    return a[int((n + 1) / 2)]
  }
  $2 == "load" { next }
  {
    side = $1; client = $2
    for (f = 3; f <= NF; f++) { split($f, kv, "="); v[side, client, kv[1]] = v[side, client, kv[1]] " " kv[2] }
    if (!(client in seen)) { seen[client] = 1; order[++nc] = client }
  }
  END {
    ns = split(sides, s, " ")
    printf "%-9s", "client"
    for (i = 1; i <= ns; i++) printf " %14s %14s %14s %14s", s[i] " MB/s", s[i] " cli us/pkt", s[i] " main us/pkt", s[i] " x retina"
    if (ns == 2) printf " %12s %12s", "MB/s h/r", "cli r/h"
    printf "\n"
    for (c = 1; c <= nc; c++) {
      cl = order[c]
      printf "%-9s", cl
      for (i = 1; i <= ns; i++) {
        m[i] = med(v[s[i], cl, "mbps"]); u[i] = med(v[s[i], cl, "cli_us_pkt"])
        printf " %14.1f %14.3f %14.3f %13.2fx", m[i], u[i], med(v[s[i], cl, "main_us_pkt"]), m[i] / med(v[s[i], "retina", "mbps"])
      }
      if (ns == 2) printf " %11.2fx %11.2fx", m[1] / m[2], u[2] / u[1]
      printf "\n"
    }
  }' "$log"
if [[ ${#labels[@]} == 2 ]]; then
  echo "(MB/s h/r: head throughput over rev's; cli r/h: rev's client CPU per packet over head's, above 1 = head cheaper)"
fi
echo "(all RESULT lines: $log)"
