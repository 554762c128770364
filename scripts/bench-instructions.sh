#!/usr/bin/env bash
# Instructions the gateway executes per small GET, counted by valgrind's callgrind: a number that
# does not depend on what else the machine is doing (unlike throughput), so per-request costs can
# be compared commit to commit. See docs/BENCHMARKS.md.
#
#   scripts/bench-instructions.sh [HOLDPOINT_BINARY]
#
# Starts the emulator and Holdpoint (under callgrind) on free loopback ports, sends small GETs
# for a warm-up, zeroes the counters, sends GETs for DURATION seconds (default 10) on CONNS
# connections (default 8), and prints user-space instructions per request (kernel work is not
# counted). Needs valgrind (installed from Debian when missing, as root).
#
# AUDIT (true) and MASK (true) set `audit.enabled` and `mask.enabled`, to see what each costs.
# Valgrind's CPU has no SHA extensions, so SHA-256 (the audit chain's hash, the static token's)
# runs its software path there, ~10x what it costs natively: its instructions are printed
# apart, and "without SHA-256" is the number to compare. Under valgrind the gateway serves
# ~250 requests a second, so the audit writer lingers BATCH_DELAY (default 500ms) for a batch:
# about as many events a transaction as at full speed natively (~130), so that the per-batch
# costs weigh per event what they weigh there.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
log() { echo "bench-instructions: $*" >&2; }
if ! command -v valgrind >/dev/null; then
  log "installing valgrind from Debian"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq valgrind >/dev/null
fi
if [ -z "${SKIP_BUILD:-}" ]; then
  cargo build --release -q -p holdpoint -p kube-emulator
  cargo build --release -q --manifest-path bench/loadgen/Cargo.toml --target-dir bench/loadgen/target
fi
HOLDPOINT=${1:-$ROOT/target/release/holdpoint}
EMULATOR=$ROOT/target/release/kube-emulator
LOADGEN=$ROOT/bench/loadgen/target/release/loadgen
W=$(mktemp -d /tmp/holdpoint-instr.XXXXXX)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill -INT "$p" 2>/dev/null || true; done; sleep 1
  for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done; rm -rf "$W"; }
trap cleanup EXIT
mapfile -t P < <("$LOADGEN" free-ports 3)
"$EMULATOR" --listen "127.0.0.1:${P[0]}" --kubeconfig-out "$W/emu.kubeconfig" --seed demo >"$W/emu.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do test -s "$W/emu.kubeconfig" && break; sleep 0.2; done
TOKEN=hp_$(openssl rand -hex 16)
cat >"$W/holdpoint.yaml" <<Y
listen: 127.0.0.1:${P[1]}
admin_listen: 127.0.0.1:${P[2]}
data_dir: $W/data
upstream:
  kubeconfig: $W/emu.kubeconfig
authentication:
  static_tokens:
    - sha256: $(printf %s "$TOKEN" | sha256sum | cut -d' ' -f1)
      user: bench
audit:
  enabled: ${AUDIT:-true}
  batch_delay: ${BATCH_DELAY:-500ms}
mask:
  enabled: ${MASK:-true}
Y
HOLDPOINT_LOG=warn valgrind --tool=callgrind --callgrind-out-file="$W/callgrind.out" \
  "$HOLDPOINT" serve --config "$W/holdpoint.yaml" >"$W/holdpoint.log" 2>&1 &
HP=$!; PIDS+=("$HP")
for _ in $(seq 300); do
  curl -sf --cacert "$W/data/tls/ca.crt" "https://127.0.0.1:${P[2]}/readyz" >/dev/null 2>&1 && break; sleep 0.3
done
run() { "$LOADGEN" run --url "https://127.0.0.1:${P[1]}" --token "$TOKEN" --ca "$W/data/tls/ca.crt" \
  --path /api/v1/namespaces/demo/configmaps/web-config --connections "${CONNS:-8}" --warmup 0 --duration "$1"; }
log "warm-up"
run 3 >/dev/null
callgrind_control -z "$HP" >/dev/null 2>&1
log "measuring for ${DURATION:-10} s"
run "${DURATION:-10}" >"$W/loadgen.json"
callgrind_control -d "$HP" >/dev/null 2>&1
sleep 1
DUMP=$(ls -t "$W"/callgrind.out.* | head -1)
IR=$(callgrind_annotate "$DUMP" 2>/dev/null | awk '/PROGRAM TOTALS/ && !n++ {gsub(",", "", $1); print $1}')
REQ=$(jq .requests "$W/loadgen.json")
# SHA-256's compression function, inclusive (what its callers spend in it).
SHA=$(callgrind_annotate --inclusive=yes "$DUMP" 2>/dev/null \
  | awk '/sha2::sha256::compress256 \[/ && !n++ {gsub(",", "", $1); print $1}')
SHA=${SHA:-0}
echo "audit ${AUDIT:-true}, mask ${MASK:-true}: requests: $REQ  instructions: $IR  instructions/request: $((IR / REQ))  of which SHA-256 (software under valgrind): $((SHA / REQ))  without SHA-256: $(((IR - SHA) / REQ))"
if [ -n "${KEEP_PROFILE:-}" ]; then cp "$DUMP" "$KEEP_PROFILE"; log "profile kept in $KEEP_PROFILE (callgrind_annotate --inclusive=yes)"; fi
