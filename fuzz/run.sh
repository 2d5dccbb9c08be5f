#!/usr/bin/env bash
# `make fuzz`: runs every cargo-fuzz target (or those in FUZZ_TARGETS) for FUZZ_RUNS executions
# (default 100000; a long run by hand: FUZZ_RUNS=10000000) on the nightly
# toolchain, starting from the seeds of fuzz/corpus/<target>/ (new inputs
# go to fuzz/work/, never into the committed seeds). Prints executions and
# findings per target; a crash is kept in fuzz/artifacts/<target>/ and makes
# the run fail: copy it to fuzz/regressions/<target>/ once fixed, and the
# stable replay test keeps it fixed.
set -uo pipefail
cd "$(dirname "$0")"
RUNS="${FUZZ_RUNS:-100000}"
if ! rustup toolchain list | grep -q '^nightly'; then
    echo "make fuzz needs the nightly toolchain: rustup toolchain install nightly" >&2
    exit 1
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "Installing cargo-fuzz ..."
    cargo install cargo-fuzz --locked || exit 1
fi
targets=${FUZZ_TARGETS:-$(sed -n 's/^name = "\(.*\)"$/\1/p' Cargo.toml | grep -v '^dav2d-fuzz-targets$')}
failed=0
printf '%-18s %12s %8s %s\n' target executions seconds findings
for target in $targets; do
    mkdir -p "work/$target" "artifacts/$target"
    log="work/$target.log"
    start=$(date +%s)
    cargo +nightly fuzz run "$target" "work/$target" "corpus/$target" -- \
        -runs="$RUNS" -max_len=65536 -timeout=10 -rss_limit_mb=2048 \
        -artifact_prefix="artifacts/$target/" >"$log" 2>&1
    status=$?
    seconds=$(( $(date +%s) - start ))
    done_runs=$(sed -n 's/^Done \([0-9]*\) runs.*/\1/p' "$log" | tail -1)
    findings=$(find "artifacts/$target" -type f | wc -l)
    printf '%-18s %12s %8s %s\n' "$target" "${done_runs:-?}" "$seconds" "$findings"
    if [ "$status" -ne 0 ] || [ "$findings" -ne 0 ]; then
        failed=1
        echo "  $target failed (exit $status); see fuzz/$log and fuzz/artifacts/$target/" >&2
        tail -20 "$log" >&2
    fi
done
exit "$failed"
