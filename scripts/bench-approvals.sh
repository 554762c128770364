#!/usr/bin/env bash
# Approval-path benchmarks (issue 4, "Performance"); numbers go to docs/BENCHMARKS.md, "Approvals".
#
#   scripts/bench-approvals.sh            # both parts
#   PARTS=latency scripts/bench-approvals.sh
#
# 1. latency  (crates/holdpoint/examples/approval_latency.rs): emulator + gateway in one process,
#    N held creates one at a time; for each, approve call sent -> create received by the
#    emulator. Knob: N (200).
# 2. capacity (crates/holdpoint/examples/approval_capacity.rs): a separate `holdpoint serve`
#    (its VmRSS/VmHWM are the gateway's alone) with HELD (1000) connections held open on a
#    10-minute hold and PENDING (10000) more pending approvals, and small GETs of an unrelated
#    object before vs during. Knobs: HELD, PENDING, CONCURRENCY (32), READ_CONNS (8), READ_SECS (5).
# Store: SQLite; BENCH_STORE=postgres with HOLDPOINT_TEST_POSTGRES_URL (scripts/postgres.sh) for
# PostgreSQL. SKIP_BUILD=1 reuses target/release.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
PARTS=${PARTS:-"latency capacity"}
N=${N:-200}
CARGO=${CARGO:-cargo}

# 1,000 held connections plus the clients' ends of them, plus the store and the emulator.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
echo "bench-approvals: open-file limit $(ulimit -n)" >&2

if [ -z "${SKIP_BUILD:-}" ]; then
  $CARGO build --release -p holdpoint --bin holdpoint \
    --example approval_latency --example approval_capacity >&2
fi
export HOLDPOINT_BIN="$ROOT/target/release/holdpoint"
for part in $PARTS; do
  case "$part" in
    latency) "$ROOT/target/release/examples/approval_latency" "$N" ;;
    capacity) "$ROOT/target/release/examples/approval_capacity" ;;
    *) echo "unknown part $part" >&2; exit 2 ;;
  esac
done
