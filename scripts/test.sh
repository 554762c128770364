#!/usr/bin/env bash
# Runs every check and test of the project on a fresh machine:
#   formatting, clippy, unit + property + end-to-end tests (Rust, with real kubectl and kube-rs),
#   and the Python kubernetes client end-to-end suite. Starts a throwaway PostgreSQL
#   (scripts/postgres.sh) so the store tests run on SQLite and PostgreSQL alike.
# Set HOLDPOINT_E2E_KUBECONFIG to an admin kubeconfig to run the end-to-end suites against a real
# cluster instead of the in-tree emulator.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh

echo "== cargo fmt"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== cargo build"
cargo build --workspace --all-targets --locked

echo "== PostgreSQL for the store tests (stopped on exit)"
# The store's test suite (and every end-to-end test that runs on both stores) creates a fresh
# database per test on this server; without HOLDPOINT_TEST_POSTGRES_URL those tests fail.
eval "$(scripts/postgres.sh start)"
trap 'scripts/postgres.sh stop "$HOLDPOINT_TEST_POSTGRES_DIR"' EXIT

echo "== Rust tests"
# Against a real cluster, the tests that need the emulator (they inspect what the upstream
# received, or use its seeded pods: `emulator_only_*`, and the approval suite) are left out,
# by name, here; run there anyway they fail, they never pass unchecked.
filter=()
if [ -n "${HOLDPOINT_E2E_KUBECONFIG:-}" ]; then
  echo "   against $HOLDPOINT_E2E_KUBECONFIG: leaving out emulator_only_* tests and e2e_approvals"
  filter=(-E 'not (test(/emulator_only_/) | binary(e2e_approvals))')
fi
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --locked --no-fail-fast "${filter[@]}"
  cargo test --workspace --doc --locked
else
  [ ${#filter[@]} -eq 0 ] || { echo "cargo-nextest is needed to filter tests" >&2; exit 1; }
  cargo test --workspace --locked --no-fail-fast
fi

echo "== Python kubernetes client end to end"
cargo build --locked -p holdpoint --bin holdpoint
HOLDPOINT_BIN="$PWD/target/debug/holdpoint" .venv/bin/python -m pytest -q tests/python
