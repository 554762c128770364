#!/usr/bin/env bash
# Masking memory benchmark (issue 5): the resident memory of `holdpoint serve` (masking on, as by
# default) while
#   1. a LIST of about 200 MiB of Secrets streams through it (target: RSS rises < 32 MiB), and
#   2. 1,000 masked watch streams of Secrets are open and receiving events (target: < 200 MiB).
# The kube-emulator upstream and the load generator are separate processes. What masking costs
# in throughput is the load benchmark's job:
#   TARGETS="holdpoint holdpoint-nomask" LIST_KIND=secrets SCENARIOS="list list-1conn" scripts/bench-load.sh
# See docs/BENCHMARKS.md.
#
#   scripts/bench-mask.sh
#
# Knobs (environment): BIG_COUNT (20000) BIG_VALUE_BYTES (7800: Secrets of ~10.6 KiB, ~200 MiB)
#   WATCHES (1000) WATCH_HOLD (20 s) PARTS ("list watches") SKIP_BUILD LOADGEN_TARGET_DIR KEEP_WORK
#   MASK (on; "off" runs the gateway with mask.enabled: false, for comparison: watches only)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"

BIG_COUNT=${BIG_COUNT:-20000}
BIG_VALUE_BYTES=${BIG_VALUE_BYTES:-7800}
WATCHES=${WATCHES:-1000}
WATCH_HOLD=${WATCH_HOLD:-20}
PARTS=${PARTS:-"list watches"}
MASK=${MASK:-on}
[ "$MASK" = on ] || [[ " $PARTS " != *" list "* ]] || { echo "MASK=off: use PARTS=watches" >&2; exit 2; }

log() { echo "bench-mask: $*" >&2; }
die() { log "ERROR: $*"; exit 1; }

WS_TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
LG_TARGET=${LOADGEN_TARGET_DIR:-$ROOT/bench/loadgen/target}
if [ -z "${SKIP_BUILD:-}" ]; then
  log "building holdpoint, kube-emulator and loadgen (release)"
  cargo build --release -q -p holdpoint -p kube-emulator
  cargo build --release -q --manifest-path bench/loadgen/Cargo.toml --target-dir "$LG_TARGET"
fi
HOLDPOINT=$WS_TARGET/release/holdpoint EMULATOR=$WS_TARGET/release/kube-emulator LOADGEN=$LG_TARGET/release/loadgen
for b in "$HOLDPOINT" "$EMULATOR" "$LOADGEN"; do [ -x "$b" ] || die "missing binary $b"; done
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

WORK=$(mktemp -d /tmp/holdpoint-bench-mask.XXXXXX)
PIDS=()
cleanup() {
  local rc=$?
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  if [ -n "${KEEP_WORK:-}" ] || [ $rc -ne 0 ]; then log "work dir kept: $WORK"; else rm -rf "$WORK"; fi
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM
wait_for() {
  local name=$1; shift
  for _ in $(seq 300); do "$@" >/dev/null 2>&1 && return 0; sleep 0.2; done
  die "$name did not come up (see $WORK/*.log)"
}
rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
# sample_rss PID OUT: writes the highest VmRSS (KiB) seen every 20 ms to OUT until killed
sample_rss() {
  local max=0 r
  while r=$(rss_kib "$1" 2>/dev/null); do
    [ "$r" -gt "$max" ] && { max=$r; echo "$max" >"$2"; }
    sleep 0.02
  done
}
mib() { awk -v k="$1" 'BEGIN {printf "%.1f", k / 1024}'; }

mapfile -t PORTS < <("$LOADGEN" free-ports 3)
P_EMU=${PORTS[0]} P_HP=${PORTS[1]} P_HP_ADMIN=${PORTS[2]}
log "starting kube-emulator"
RUST_LOG=warn "$EMULATOR" --listen "127.0.0.1:$P_EMU" --kubeconfig-out "$WORK/emulator.kubeconfig" \
  --seed demo >"$WORK/emulator.log" 2>&1 &
PIDS+=($!)
wait_for "kube-emulator kubeconfig" test -s "$WORK/emulator.kubeconfig"
while IFS='=' read -r k v; do
  case $k in SERVER) EMU_URL=$v ;; TOKEN) EMU_TOKEN=$v ;; esac
done < <("$LOADGEN" kubeconfig "$WORK/emulator.kubeconfig" --ca-out "$WORK/emulator-ca.crt")
EMU=(--url "$EMU_URL" --ca "$WORK/emulator-ca.crt")
wait_for "kube-emulator" curl -sf --cacert "$WORK/emulator-ca.crt" -H "Authorization: Bearer $EMU_TOKEN" "$EMU_URL/version"

HP_TOKEN=hpbench_$(openssl rand -hex 32)
mkdir -p "$WORK/holdpoint"
cat >"$WORK/holdpoint/holdpoint.yaml" <<EOF
listen: 127.0.0.1:$P_HP
admin_listen: 127.0.0.1:$P_HP_ADMIN
data_dir: $WORK/holdpoint/data
upstream:
  kubeconfig: $WORK/emulator.kubeconfig
authentication:
  static_tokens:
    - sha256: $(printf %s "$HP_TOKEN" | sha256sum | cut -d' ' -f1)
      user: bench
      groups: [bench]
EOF
[ "$MASK" = on ] || printf 'mask:\n  enabled: false\n' >>"$WORK/holdpoint/holdpoint.yaml"
log "starting holdpoint (masking $MASK)"
HOLDPOINT_LOG=warn "$HOLDPOINT" serve --config "$WORK/holdpoint/holdpoint.yaml" >"$WORK/holdpoint.log" 2>&1 &
HP_PID=$!; PIDS+=("$HP_PID")
HP_CA=$WORK/holdpoint/data/tls/ca.crt
wait_for "holdpoint" curl -sf --cacert "$HP_CA" "https://127.0.0.1:$P_HP_ADMIN/readyz"
HP_URL=https://127.0.0.1:$P_HP
hp_get() { curl -sS --fail --cacert "$HP_CA" -H "Authorization: Bearer $HP_TOKEN" "$HP_URL$1"; }

REPORT=$WORK/report.md
{
  echo "## Masking memory, $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo
  echo "- machine: $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')), load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "- tree: $(git rev-parse --short HEAD 2>/dev/null || echo unknown); masking $MASK; holdpoint resident memory (VmRSS) sampled every 20 ms"
  echo
  echo "| measurement | value | target | verdict |"
  echo "|---|---:|---|---|"
} >"$REPORT"

if [[ " $PARTS " == *" list "* ]]; then
  log "seeding $BIG_COUNT Secrets (~$((BIG_VALUE_BYTES * 4 / 3 + 400)) bytes each) in namespace big"
  LOADGEN_TOKEN=$EMU_TOKEN "$LOADGEN" seed "${EMU[@]}" --namespace big --kind secret \
    --count "$BIG_COUNT" --value-bytes "$BIG_VALUE_BYTES" >&2
  hp_get "/api/v1/namespaces/demo/secrets" >/dev/null # warm-up: connections, TLS, the masker
  hp_get "/api/v1/namespaces/big/secrets?limit=500" >/dev/null
  upstream_bytes=$(curl -sS --fail --cacert "$WORK/emulator-ca.crt" -H "Authorization: Bearer $EMU_TOKEN" \
    "$EMU_URL/api/v1/namespaces/big/secrets" | wc -c)
  sleep 1
  base=$(rss_kib "$HP_PID")
  sample_rss "$HP_PID" "$WORK/list-peak" & SAMPLER=$!; PIDS+=("$SAMPLER")
  t0=$(date +%s.%N)
  hp_get "/api/v1/namespaces/big/secrets" >"$WORK/big.json"
  t1=$(date +%s.%N)
  sleep 0.2; kill "$SAMPLER" 2>/dev/null || true; wait "$SAMPLER" 2>/dev/null || true
  peak=$(cat "$WORK/list-peak" 2>/dev/null || echo "$base")
  bytes=$(stat -c %s "$WORK/big.json")
  items=$(grep -o '"name":"bench-' "$WORK/big.json" | wc -l)
  masked=$(grep -o 'W01BU0tFRF0=' "$WORK/big.json" | wc -l)
  # the password of every Secret is base64("S3cr3t-NNNNN"): its prefix must not be there
  ! grep -q 'UzNjcjN0LT' "$WORK/big.json" || die "a Secret value passed unmasked"
  [ "$items" -eq "$BIG_COUNT" ] || die "expected $BIG_COUNT items, got $items"
  rise=$((peak - base))
  secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.2f", b - a}')
  log "LIST of $(mib $((upstream_bytes / 1024))) MiB (masked: $(mib $((bytes / 1024))) MiB) in $secs s: RSS $(mib "$base") -> peak $(mib "$peak") MiB"
  rm -f "$WORK/big.json"
  {
    echo "| LIST of $BIG_COUNT Secrets, $(mib $((upstream_bytes / 1024))) MiB from the upstream, $(mib $((bytes / 1024))) MiB masked ($masked values) in $secs s: resident memory before / peak | $(mib "$base") / $(mib "$peak") MiB | | |"
    echo "| ... rise during the LIST | $(mib "$rise") MiB | < 32 MiB | $([ "$rise" -lt 32768 ] && echo '**met**' || echo '**not met**') |"
  } >>"$REPORT"
fi

if [[ " $PARTS " == *" watches "* ]]; then
  log "seeding 20 Secrets in namespace watched"
  LOADGEN_TOKEN=$EMU_TOKEN "$LOADGEN" seed "${EMU[@]}" --namespace watched --kind secret --count 20 >&2
  sleep 1
  base=$(rss_kib "$HP_PID")
  sample_rss "$HP_PID" "$WORK/watch-peak" & SAMPLER=$!; PIDS+=("$SAMPLER")
  # events while the watches are open: one Secret changed every 200 ms (straight at the emulator)
  (
    i=0
    while true; do
      i=$((i + 1))
      curl -s -o /dev/null --cacert "$WORK/emulator-ca.crt" -H "Authorization: Bearer $EMU_TOKEN" \
        -H 'Content-Type: application/merge-patch+json' -X PATCH \
        --data "{\"data\":{\"password\":\"$(printf 'S3cr3t-w%06d' "$i" | base64)\"}}" \
        "$EMU_URL/api/v1/namespaces/watched/secrets/bench-$(printf %05d $((i % 20)))"
      sleep 0.2
    done
  ) & CHANGER=$!; PIDS+=("$CHANGER")
  log "opening $WATCHES watches through holdpoint, holding them $WATCH_HOLD s"
  out=$(LOADGEN_TOKEN=$HP_TOKEN "$LOADGEN" --threads 2 watch --url "$HP_URL" --ca "$HP_CA" \
    --path "/api/v1/namespaces/watched/secrets?watch=1&timeoutSeconds=600" \
    --connections "$WATCHES" --duration "$WATCH_HOLD" 2> >(tee "$WORK/watch.err" >&2))
  held=$(rss_kib "$HP_PID")
  kill "$CHANGER" "$SAMPLER" 2>/dev/null || true; wait "$CHANGER" "$SAMPLER" 2>/dev/null || true
  peak=$(cat "$WORK/watch-peak" 2>/dev/null || echo "$base")
  echo "$out" >"$WORK/watch.json"
  opened=$(jq -r .opened <<<"$out"); events=$(jq -r .events <<<"$out"); errors=$(jq -r .errors <<<"$out")
  [ "$opened" -eq "$WATCHES" ] || die "only $opened of $WATCHES watches opened: $(jq -r .first_error <<<"$out")"
  log "$WATCHES watches: RSS $(mib "$base") -> peak $(mib "$peak") MiB, $events events, $errors errors"
  {
    echo "| $WATCHES masked watches of Secrets held $WATCH_HOLD s ($events events received, $errors errors): resident memory before / at the end / peak | $(mib "$base") / $(mib "$held") / $(mib "$peak") MiB | < 200 MiB | $([ "$peak" -lt 204800 ] && echo '**met**' || echo '**not met**') |"
  } >>"$REPORT"
fi
echo >>"$REPORT"
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)" >>"$REPORT"
cat "$REPORT"
