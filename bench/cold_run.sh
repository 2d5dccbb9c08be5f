#!/usr/bin/env bash
# A newcomer's first `make run`, timed: a fresh clone of this repository's
# HEAD and an empty target folder (the crates already downloaded, as after
# any earlier build on the machine), from `make run` to the demo's first
# summary line. `FULL=1` times the build with every part (`make run
# CONFIG=...` builds that one) instead of the demo's. Prints seconds.
# `make bench-cold` runs it; it takes minutes and both cores.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d)"
trap 'pkill -f "$work/target/release/dav2d" 2>/dev/null || true; rm -rf "$work"' EXIT
git clone -q "$root" "$work/clone"
cd "$work/clone"
args=(RUN_ARGS="--for 20s --refresh 1s --http 127.0.0.1:0 --tcp off --data off")
if [[ "${FULL:-0}" == 1 ]]; then
    args+=(CONFIG="$root/examples/http-persistence.yaml")
fi
start=$(date +%s%N)
CARGO_TARGET_DIR="$work/target" make run "${args[@]}" > "$work/out.log" 2>&1 &
deadline=$((SECONDS + 1800))
until grep -q "samples=" "$work/out.log" 2>/dev/null; do
    if ((SECONDS > deadline)) || ! jobs %1 >/dev/null 2>&1; then
        cat "$work/out.log" >&2
        echo "no summary line" >&2
        exit 1
    fi
    sleep 0.2
done
end=$(date +%s%N)
tenths=$(((end - start) / 100000000))
echo "cold make run to the first summary line: $((tenths / 10)).$((tenths % 10)) s (FULL=${FULL:-0})"
wait || true
