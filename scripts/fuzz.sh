#!/usr/bin/env bash
# `make fuzz`: builds the fuzz driver with libFuzzer and AddressSanitizer (its own scratch path,
# .build-fuzz) and runs each target for FUZZ_SECONDS (default 60) from the seeds in fuzz/corpus.
# New inputs go to .fuzz-work/TARGET (git-ignored); a finding stops that target, is saved as
# .fuzz-work/TARGET-crash-*, and the run exits 1. Keep a finding as a regression case by copying it
# to fuzz/regressions/TARGET/ once fixed: the tests replay that folder on every run.
# Optional: FUZZ_TARGETS="json sse manifest http", FUZZ_SECONDS=60.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${FUZZ_SECONDS:-60}
targets=${FUZZ_TARGETS:-json sse manifest http}
flags=(-Xswiftc -sanitize=fuzzer,address -Xswiftc -DFUZZING)
swift build --scratch-path .build-fuzz --product ai-gateway-fuzz "${flags[@]}"
bin="$(swift build --scratch-path .build-fuzz --show-bin-path "${flags[@]}")/ai-gateway-fuzz"
status=0
summary=()
for t in $targets; do
    mkdir -p ".fuzz-work/$t"
    log=".fuzz-work/$t.log"
    echo "== fuzzing $t for ${seconds}s"
    if AIGW_FUZZ_TARGET=$t "$bin" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=4096 -max_len=65536 \
        -print_final_stats=1 -artifact_prefix=".fuzz-work/$t-" ".fuzz-work/$t" "fuzz/corpus/$t" >"$log" 2>&1; then
        result=clean
    else
        result="FINDING (see $log and .fuzz-work/$t-*)"
        status=1
    fi
    runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo '?')
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*' || echo '?')
    summary+=("$t: $runs executions, coverage $cov edges, $result")
done
echo
echo "fuzz summary (${seconds}s per target):"
printf '  %s\n' "${summary[@]}"
exit $status
