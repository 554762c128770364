#!/usr/bin/env bash
# Runs the cargo-fuzz targets in fuzz/ (outside the workspace: they need the nightly toolchain
# and cargo-fuzz, which this script installs when missing), each for SECONDS (default 120).
#   scripts/fuzz.sh                 # every target
#   SECONDS_PER_TARGET=600 scripts/fuzz.sh mask_stream
# A crash leaves its input in fuzz/artifacts/<target>/ and fails the script.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER_TARGET=${SECONDS_PER_TARGET:-120}
if ! rustup toolchain list | grep -q '^nightly'; then
  rustup toolchain install nightly --profile minimal
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  cargo install --locked cargo-fuzz
fi
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  mapfile -t targets < <(cargo +nightly fuzz list --fuzz-dir fuzz)
fi
for t in "${targets[@]}"; do
  echo "== fuzz $t for ${SECONDS_PER_TARGET}s"
  cargo +nightly fuzz run --fuzz-dir fuzz "$t" -- -max_total_time="$SECONDS_PER_TARGET" -rss_limit_mb=4096
done
