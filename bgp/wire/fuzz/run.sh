#!/usr/bin/env bash
# Bounded fuzz run of every BGP decoder target: `bash bgp/wire/fuzz/run.sh [SECONDS_PER_TARGET]`.
# Uses cargo-fuzz on the stable toolchain without a sanitizer; installs cargo-fuzz if missing.
# Fails on a build error, and on any crash, oom or timeout artifact (left under
# bgp/wire/fuzz/artifacts/<target>/). Each target starts from the committed seeds
# (seeds/<target>/, from the annotated vectors: `bash seeds.sh` regenerates them) plus the
# corpus it grew before; its executions are printed.
set -euo pipefail
cd "$(dirname "$0")"
secs="${1:-30}"
if ! cargo fuzz --version >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked --quiet
fi
targets=(decode_message decode_update decode_open frame)
# A build error fails here (set -e), not silently inside the runs below.
cargo fuzz build --sanitizer none 2>&1 | tail -n 3 || exit 1
for target in "${targets[@]}"; do
  echo "== fuzz $target for ${secs}s"
  mkdir -p "corpus/$target" "artifacts/$target"
  seeds=()
  [ -d "seeds/$target" ] && seeds=("seeds/$target")
  log=$(mktemp)
  status=0
  cargo fuzz run --sanitizer none "$target" "corpus/$target" "${seeds[@]}" -- \
    -max_total_time="$secs" -rss_limit_mb=2048 -timeout=10 >"$log" 2>&1 || status=$?
  grep -E "^#[0-9]+[[:space:]]+(INITED|DONE)|^Done [0-9]+ runs|SUMMARY|panicked" "$log" || true
  found=$(find "artifacts/$target" -maxdepth 1 -type f \( -name 'crash-*' -o -name 'oom-*' \
    -o -name 'timeout-*' -o -name 'leak-*' \) | head -n 1)
  if [ -n "$found" ]; then
    echo "fuzz target $target left artifacts:" >&2
    ls artifacts/"$target" >&2
    tail -n 30 "$log" >&2
    rm -f "$log"
    exit 1
  fi
  if [ "$status" -ne 0 ]; then
    echo "fuzz target $target failed (exit $status):" >&2
    tail -n 30 "$log" >&2
    rm -f "$log"
    exit 1
  fi
  rm -f "$log"
done
