#!/usr/bin/env bash
# Bounded fuzz run of every BGP decoder target: `bash bgp/wire/fuzz/run.sh [SECONDS_PER_TARGET]`.
# Uses cargo-fuzz on the stable toolchain without a sanitizer; installs cargo-fuzz if missing.
# A crash fails the run and leaves the input under bgp/wire/fuzz/artifacts/<target>/.
set -euo pipefail
cd "$(dirname "$0")"
secs="${1:-30}"
if ! cargo fuzz --version >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked --quiet
fi
for target in decode_message decode_update decode_open frame; do
  echo "== fuzz $target for ${secs}s"
  cargo fuzz run --sanitizer none "$target" -- -max_total_time="$secs" -rss_limit_mb=2048 2>&1 \
    | grep -E "^(#[0-9]+ +DONE|Done|==[0-9]+==|SUMMARY|thread .* panicked)|crash|panicked" || true
  # cargo fuzz exits non-zero on a crash; with pipefail the check below is what fails the run.
  if ls artifacts/"$target"/crash-* >/dev/null 2>&1; then
    echo "fuzz target $target crashed: see bgp/wire/fuzz/artifacts/$target/" >&2
    exit 1
  fi
done
