#!/usr/bin/env bash
# Runs every cargo-fuzz target of fuzz/ in turn, one process at a time (see docs/RELIABILITY.md, "Fuzzing").
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]     (default 120 s, all targets)
#
#   SANITIZER=address|none (default address): `none` runs several times faster on most targets. The code under
#   test forbids `unsafe`, so AddressSanitizer can only add checks inside dependencies; overflow checks and debug
#   assertions stay on either way. Run two copies with disjoint TARGET lists to use two cores.
#
# Each target stops at 10 million executions or SECONDS_PER_TARGET, whichever comes first. New inputs go to
# fuzz/work/<target> (not committed); the committed seeds of fuzz/corpus/<target> are only read. Crashes land in
# fuzz/artifacts/<target>; logs in fuzz/logs/<target>.log, whose last lines give the executions
# ("Done N runs" / stat::number_of_executed_units).
set -u
cd "$(dirname "$0")/../fuzz"
secs=${1:-120}
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    mapfile -t targets < <(cargo +nightly fuzz list)
fi
mkdir -p logs
# ASan's quarantine (256 MB by default) counts in the RSS that -rss_limit_mb watches: keep it small so that the
# limit measures the code under test. Leak detection stays on.
export ASAN_OPTIONS="${ASAN_OPTIONS:-quarantine_size_mb=16:malloc_context_size=8}"
sanitizer=${SANITIZER:-address}
for t in "${targets[@]}"; do
    mkdir -p "work/$t"
    cargo +nightly fuzz run -s "$sanitizer" "$t" "work/$t" "corpus/$t" -- \
        -rss_limit_mb=256 -timeout=10 -max_total_time="$secs" -runs=10000000 -print_final_stats=1 \
        >"logs/$t.log" 2>&1
    rc=$?
    runs=$(grep -E '^stat::number_of_executed_units' "logs/$t.log" | awk '{print $2}' | tail -1)
    secs_used=$(grep -oE 'Done [0-9]+ runs in [0-9]+ second' "logs/$t.log" | awk '{print $5}' | tail -1)
    echo "$t sanitizer=$sanitizer rc=$rc executions=${runs:-?} seconds=${secs_used:-?}"
done
