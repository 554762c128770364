#!/usr/bin/env bash
# Data-path load benchmark: the same Kubernetes API emulator process reached
#   1. directly, 2. through Holdpoint, 3. through nginx (plain TLS reverse proxy),
# with small GETs and 5,000-object LISTs. One command, loopback only, bounded duration
# (about 2.5 minutes per round, 3 rounds by default, after the build). See docs/BENCHMARKS.md.
#
#   scripts/bench-load.sh
#
# Knobs (environment): GET_CONNS (32) LIST_CONNS (4) WARMUP (2) DURATION (10) LAT_DURATION (5)
#   LIST_COUNT (5000) NGINX_WORKERS (auto) NGINX_PROXY_BUFFER_SIZE (nginx default) LOADGEN_THREADS (1) TARGETS ("direct holdpoint nginx")
#   ROUNDS (3: every scenario x target ROUNDS times, interleaved; ratios use per-cell medians)
#   DISTURBED_CORES (0.15) RETRIES (2): a run during which processes outside the benchmark used
#   more than DISTURBED_CORES cores is marked disturbed and retried up to RETRIES times; ratios
#   use undisturbed runs when a cell has any.
#   HOLDPOINT_BIN (the release build; another binary to compare) SKIP_BUILD (unset) KEEP_WORK (unset: the temp dir is removed on exit) OUT (bench/results/latest.md)
#   SCENARIOS ("get get-1conn list list-1conn")
#   Audit log (issue 6): target `holdpoint-noaudit` is a second Holdpoint with `audit.enabled:
#   false`; HP_STORE (sqlite | postgres: the audited Holdpoint's store on a throwaway PostgreSQL from
#   scripts/postgres.sh, which runs with fsync off; its CPU is the "CPU store" column, not a
#   disturbance). E.g. the audit on/off comparison:
#     TARGETS="holdpoint holdpoint-noaudit" SCENARIOS="get get-1conn" scripts/bench-load.sh
#   Masking (issue 5): target `holdpoint-nomask` is a second Holdpoint with `mask.enabled: false`
#   (audit on, its own SQLite store); LIST_KIND (configmaps | secrets: what namespace bench holds).
#   What masking costs, a LIST of 5,000 Secrets masked vs not:
#     TARGETS="holdpoint holdpoint-nomask" LIST_KIND=secrets SCENARIOS="list list-1conn" scripts/bench-load.sh
#   The data path alone (the foundation's phases, masking and audit off): target `holdpoint-bare`.
#     TARGETS="direct holdpoint holdpoint-noaudit holdpoint-bare nginx" SCENARIOS="get get-1conn" scripts/bench-load.sh
#   HP_DATA_THREADS (0: every Holdpoint's `data_threads`, 0 = one per CPU)
#   HP_AUDIT_YAML (empty: more `audit:` settings for every audited Holdpoint, one per line, e.g.
#   "batch_delay: 50ms")
#   LOADGEN_TARGET_DIR (bench/loadgen/target: where loadgen is built)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"

GET_CONNS=${GET_CONNS:-32}
LIST_CONNS=${LIST_CONNS:-4}
WARMUP=${WARMUP:-2}
DURATION=${DURATION:-10}
LAT_DURATION=${LAT_DURATION:-5}
LIST_COUNT=${LIST_COUNT:-5000}
LIST_KIND=${LIST_KIND:-configmaps}
case $LIST_KIND in configmaps|secrets) ;; *) echo "LIST_KIND must be configmaps or secrets" >&2; exit 2 ;; esac
NGINX_WORKERS=${NGINX_WORKERS:-auto}
NGINX_PROXY_BUFFER_SIZE=${NGINX_PROXY_BUFFER_SIZE:-} # empty: nginx's default (one memory page)
TARGETS=${TARGETS:-"direct holdpoint nginx"}
SCENARIOS=${SCENARIOS:-"get get-1conn list list-1conn"}
HP_STORE=${HP_STORE:-sqlite}
HP_DATA_THREADS=${HP_DATA_THREADS:-0}
OUT=${OUT:-bench/results/latest.md}
ROUNDS=${ROUNDS:-3}
DISTURBED_CORES=${DISTURBED_CORES:-0.15}
RETRIES=${RETRIES:-2}
export LOADGEN_THREADS=${LOADGEN_THREADS:-1}
GET_PATH=/api/v1/namespaces/demo/configmaps/web-config
LIST_PATH=/api/v1/namespaces/bench/$LIST_KIND

log() { echo "bench: $*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# ---------------------------------------------------------------------------------------------
# Build
WS_TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
LG_TARGET=${LOADGEN_TARGET_DIR:-$ROOT/bench/loadgen/target}
if [ -z "${SKIP_BUILD:-}" ]; then
  log "building holdpoint and kube-emulator (release)"
  cargo build --release -q -p holdpoint -p kube-emulator
  log "building bench/loadgen (release, own workspace)"
  cargo build --release -q --manifest-path bench/loadgen/Cargo.toml --target-dir "$LG_TARGET"
fi
HOLDPOINT=${HOLDPOINT_BIN:-$WS_TARGET/release/holdpoint}
EMULATOR=$WS_TARGET/release/kube-emulator
LOADGEN=$LG_TARGET/release/loadgen
for b in "$HOLDPOINT" "$EMULATOR" "$LOADGEN"; do [ -x "$b" ] || die "missing binary $b"; done
for t in curl openssl jq sha256sum; do command -v "$t" >/dev/null || die "$t is required"; done

# nginx from Debian, installed when missing (the package's default site is never used: nginx runs
# below from a temp prefix with its own config).
if [[ " $TARGETS " == *" nginx "* ]] && ! command -v nginx >/dev/null; then
  [ "$(id -u)" = 0 ] || die "nginx is missing; run: sudo apt-get install -y nginx"
  log "installing nginx from Debian"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx >/dev/null
fi

# ---------------------------------------------------------------------------------------------
# Processes and cleanup
WORK=$(mktemp -d /tmp/holdpoint-bench.XXXXXX)
chmod 711 "$WORK" # nginx workers (user nobody when run as root) may traverse, not list
PIDS=()
cleanup() {
  local rc=$?
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  if [ -n "${PG_DIR:-}" ]; then scripts/postgres.sh stop "$PG_DIR" || true; fi
  if [ -n "${KEEP_WORK:-}" ] || [ $rc -ne 0 ]; then log "work dir kept: $WORK"; else rm -rf "$WORK"; fi
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# wait_for NAME TRIES CMD...: polls CMD every 0.2 s.
wait_for() {
  local name=$1 tries=$2; shift 2
  for _ in $(seq "$tries"); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.2
  done
  die "$name did not come up (see $WORK/*.log)"
}

# CPU time (clock ticks, user+system) of processes and their direct children.
cpu_ticks() {
  local total=0 p
  for p in "$@" $(for q in "$@"; do pgrep -P "$q" || true; done); do
    [ -r "/proc/$p/stat" ] || continue
    # fields after the ")" that ends the command name: utime is 12th, stime 13th
    total=$(( total + $(sed 's/^.*) //' "/proc/$p/stat" | awk '{print $12 + $13}') ))
  done
  echo "$total"
}
HZ=$(getconf CLK_TCK)
# Busy CPU time of the whole machine (clock ticks): every process, ours or not.
system_busy_ticks() { awk '/^cpu / {print $2 + $3 + $4 + $7 + $8; exit}' /proc/stat; }

mapfile -t PORTS < <("$LOADGEN" free-ports 10)
P_EMU=${PORTS[0]} P_HP=${PORTS[1]} P_HP_ADMIN=${PORTS[2]} P_NGX=${PORTS[3]}
P_HPN=${PORTS[4]} P_HPN_ADMIN=${PORTS[5]} P_HPM=${PORTS[6]} P_HPM_ADMIN=${PORTS[7]}
P_HPB=${PORTS[8]} P_HPB_ADMIN=${PORTS[9]}

# ---------------------------------------------------------------------------------------------
# 1. The emulator (the single upstream of all three targets)
log "starting kube-emulator on 127.0.0.1:$P_EMU"
RUST_LOG=warn "$EMULATOR" --listen "127.0.0.1:$P_EMU" --kubeconfig-out "$WORK/emulator.kubeconfig" \
  --seed demo >"$WORK/emulator.log" 2>&1 &
EMU_PID=$!; PIDS+=("$EMU_PID")
wait_for "kube-emulator kubeconfig" 150 test -s "$WORK/emulator.kubeconfig"
while IFS='=' read -r k v; do
  case $k in SERVER) EMU_URL=$v ;; TOKEN) EMU_TOKEN=$v ;; esac
done < <("$LOADGEN" kubeconfig "$WORK/emulator.kubeconfig" --ca-out "$WORK/emulator-ca.crt")
[ -n "${EMU_URL:-}" ] && [ -n "${EMU_TOKEN:-}" ] || die "cannot read the emulator kubeconfig"
wait_for "kube-emulator" 150 curl -sf --cacert "$WORK/emulator-ca.crt" -H "Authorization: Bearer $EMU_TOKEN" "$EMU_URL/version"
curl -sf --cacert "$WORK/emulator-ca.crt" -H "Authorization: Bearer $EMU_TOKEN" "$EMU_URL$GET_PATH" >/dev/null \
  || die "the demo seed has no $GET_PATH"

log "seeding $LIST_COUNT $LIST_KIND of ~1 KiB in namespace bench (through the API)"
LOADGEN_TOKEN=$EMU_TOKEN "$LOADGEN" seed --url "$EMU_URL" --ca "$WORK/emulator-ca.crt" \
  --namespace bench --count "$LIST_COUNT" --kind "${LIST_KIND%s}" >&2

# ---------------------------------------------------------------------------------------------
# 2. Holdpoint in front of it
HP_TOKEN=hpbench_$(openssl rand -hex 32)
HP_SHA=$(printf %s "$HP_TOKEN" | sha256sum | cut -d' ' -f1)
HP_STORE_YAML=
if [ "$HP_STORE" = postgres ]; then
  eval "$(scripts/postgres.sh start)"
  PG_DIR=$HOLDPOINT_TEST_POSTGRES_DIR
  # the server's postmaster; cpu_ticks adds its children (the backends)
  PG_PID=$(head -1 "$PG_DIR/data/postmaster.pid")
  HP_STORE_YAML="store:
  url: $HOLDPOINT_TEST_POSTGRES_URL"
fi
# hp_config DIR LISTEN ADMIN AUDIT_ENABLED STORE_YAML
hp_config() {
  mkdir -p "$1"
  cat >"$1/holdpoint.yaml" <<EOF
listen: 127.0.0.1:$2
admin_listen: 127.0.0.1:$3
data_dir: $1/data
data_threads: $HP_DATA_THREADS
upstream:
  kubeconfig: $WORK/emulator.kubeconfig
authentication:
  static_tokens:
    - sha256: $HP_SHA
      user: bench
      groups: [bench]
audit:
  enabled: $4
$(if [ "$4" = true ] && [ -n "${HP_AUDIT_YAML:-}" ]; then printf '%s\n' "$HP_AUDIT_YAML" | sed 's/^/  /'; fi)
$5
EOF
}
# start_holdpoint NAME VAR LISTEN ADMIN AUDIT_ENABLED EXTRA_YAML WHAT: one Holdpoint from the same
# binary, in $WORK/NAME; sets ${VAR}_PID and ${VAR}_CA once it is ready.
start_holdpoint() {
  local name=$1 var=$2 ca=$WORK/$1/data/tls/ca.crt
  hp_config "$WORK/$name" "$3" "$4" "$5" "$6"
  log "starting $name on 127.0.0.1:$3 ($7)"
  HOLDPOINT_LOG=warn "$HOLDPOINT" serve --config "$WORK/$name/holdpoint.yaml" >"$WORK/$name.log" 2>&1 &
  local pid=$!
  PIDS+=("$pid")
  printf -v "${var}_PID" '%s' "$pid"
  printf -v "${var}_CA" '%s' "$ca"
  wait_for "$name CA" 150 test -s "$ca"
  wait_for "$name" 150 curl -sf --cacert "$ca" "https://127.0.0.1:$4/readyz"
}
MASK_OFF="mask:
  enabled: false"
start_holdpoint holdpoint HP "$P_HP" "$P_HP_ADMIN" true "$HP_STORE_YAML" \
  "HOLDPOINT_LOG=warn, audit on, store $HP_STORE"
HP_URL=https://127.0.0.1:$P_HP
if [[ " $TARGETS " == *" holdpoint-noaudit "* ]]; then
  start_holdpoint holdpoint-noaudit HPN "$P_HPN" "$P_HPN_ADMIN" false "" "audit off"
fi
if [[ " $TARGETS " == *" holdpoint-bare "* ]]; then
  start_holdpoint holdpoint-bare HPB "$P_HPB" "$P_HPB_ADMIN" false "$MASK_OFF" \
    "masking and audit off: the data path alone"
fi
if [[ " $TARGETS " == *" holdpoint-nomask "* ]]; then
  start_holdpoint holdpoint-nomask HPM "$P_HPM" "$P_HPM_ADMIN" true "$MASK_OFF" "masking off"
fi

# ---------------------------------------------------------------------------------------------
# 3. nginx in front of it: plain TLS reverse proxy, from a temp prefix, not daemonized
NGX=$WORK/nginx
mkdir -p "$NGX/tmp" "$NGX/logs"
chmod 755 "$NGX" "$NGX/tmp" "$NGX/logs"
# A tiny CA and a leaf for 127.0.0.1, so the load generator verifies nginx like the others.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj "/CN=bench nginx CA" \
  -keyout "$NGX/ca.key" -out "$NGX/ca.crt" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=127.0.0.1" \
  -keyout "$NGX/tls.key" -out "$NGX/tls.csr" 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' >"$NGX/ext.cnf"
openssl x509 -req -in "$NGX/tls.csr" -CA "$NGX/ca.crt" -CAkey "$NGX/ca.key" -CAcreateserial -days 2 \
  -extfile "$NGX/ext.cnf" -out "$NGX/tls.crt" 2>/dev/null
EMU_HOSTPORT=${EMU_URL#https://}; EMU_HOSTPORT=${EMU_HOSTPORT%%/*}
cat >"$NGX/nginx.conf" <<EOF
# Generated by scripts/bench-load.sh: a plain TLS reverse proxy to the emulator.
worker_processes $NGINX_WORKERS;
pid $NGX/nginx.pid;
error_log stderr warn;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $NGX/tmp/body;
  proxy_temp_path $NGX/tmp/proxy;
  fastcgi_temp_path $NGX/tmp/fastcgi;
  uwsgi_temp_path $NGX/tmp/uwsgi;
  scgi_temp_path $NGX/tmp/scgi;
  keepalive_requests 10000000;
  keepalive_timeout 120s;
  upstream emulator {
    server $EMU_HOSTPORT;
    keepalive 64;
    keepalive_requests 10000000;
    keepalive_timeout 120s;
  }
  server {
    listen 127.0.0.1:$P_NGX ssl;
    ssl_certificate $NGX/tls.crt;
    ssl_certificate_key $NGX/tls.key;
    ssl_protocols TLSv1.2 TLSv1.3;
    location / {
      proxy_pass https://emulator;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffering off;
      ${NGINX_PROXY_BUFFER_SIZE:+proxy_buffer_size $NGINX_PROXY_BUFFER_SIZE; proxy_buffers 4 $NGINX_PROXY_BUFFER_SIZE; proxy_busy_buffers_size $NGINX_PROXY_BUFFER_SIZE;}
      proxy_request_buffering off;
      proxy_ssl_verify off;
      proxy_ssl_session_reuse on;
      proxy_read_timeout 120s;
    }
  }
}
EOF
if [[ " $TARGETS " == *" nginx "* ]]; then
  log "starting nginx on 127.0.0.1:$P_NGX (worker_processes $NGINX_WORKERS)"
  nginx -p "$NGX" -c "$NGX/nginx.conf" -e stderr -g 'daemon off;' >"$WORK/nginx.log" 2>&1 &
  NGX_PID=$!; PIDS+=("$NGX_PID")
  wait_for "nginx" 150 curl -sf --cacert "$NGX/ca.crt" -H "Authorization: Bearer $EMU_TOKEN" "https://127.0.0.1:$P_NGX/version"
fi

# ---------------------------------------------------------------------------------------------
# Measurements
RESULTS=$WORK/results.jsonl
: >"$RESULTS"
# run_one TARGET SCENARIO PATH CONNS WARMUP DURATION [loadgen args...]
run_one() {
  local target=$1 scenario=$2 path=$3 conns=$4 warm=$5 dur=$6; shift 6
  local url token tls proxy_pids=() store_pids=()
  case $target in
    direct) url=$EMU_URL; token=$EMU_TOKEN; tls=(--ca "$WORK/emulator-ca.crt") ;;
    holdpoint) url=$HP_URL; token=$HP_TOKEN; tls=(--ca "$HP_CA"); proxy_pids=("$HP_PID")
      # the audited gateway's PostgreSQL is part of what is measured, not a disturbance
      [ -n "${PG_PID:-}" ] && store_pids=("$PG_PID") ;;
    holdpoint-noaudit) url=https://127.0.0.1:$P_HPN; token=$HP_TOKEN; tls=(--ca "$HPN_CA"); proxy_pids=("$HPN_PID") ;;
    holdpoint-nomask) url=https://127.0.0.1:$P_HPM; token=$HP_TOKEN; tls=(--ca "$HPM_CA"); proxy_pids=("$HPM_PID") ;;
    holdpoint-bare) url=https://127.0.0.1:$P_HPB; token=$HP_TOKEN; tls=(--ca "$HPB_CA"); proxy_pids=("$HPB_PID") ;;
    nginx) url=https://127.0.0.1:$P_NGX; token=$EMU_TOKEN; tls=(--ca "$NGX/ca.crt"); proxy_pids=("$NGX_PID") ;;
  esac
  local load1 t0 t1 e0 e1 p0=0 p1=0 d0=0 d1=0 s0 s1 line
  load1=$(cut -d' ' -f1 /proc/loadavg)
  e0=$(cpu_ticks "$EMU_PID"); [ ${#proxy_pids[@]} -gt 0 ] && p0=$(cpu_ticks "${proxy_pids[@]}")
  [ ${#store_pids[@]} -gt 0 ] && d0=$(cpu_ticks "${store_pids[@]}")
  s0=$(system_busy_ticks)
  t0=$(date +%s.%N)
  line=$(LOADGEN_TOKEN=$token "$LOADGEN" run --url "$url" "${tls[@]}" --path "$path" \
    --connections "$conns" --warmup "$warm" --duration "$dur" \
    --label target="$target" --label scenario="$scenario" "$@") || die "loadgen failed for $target/$scenario"
  t1=$(date +%s.%N)
  e1=$(cpu_ticks "$EMU_PID"); [ ${#proxy_pids[@]} -gt 0 ] && p1=$(cpu_ticks "${proxy_pids[@]}")
  [ ${#store_pids[@]} -gt 0 ] && d1=$(cpu_ticks "${store_pids[@]}")
  s1=$(system_busy_ticks)
  line=$(jq -c --argjson scpu "$(( s1 - s0 ))" --arg load1 "$load1" --argjson wall "$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.3f", b - a}')" \
      --argjson ecpu "$(( e1 - e0 ))" --argjson pcpu "$(( p1 - p0 ))" --argjson hz "$HZ" --argjson np "${#proxy_pids[@]}" \
      --argjson dcpu "$(( d1 - d0 ))" --argjson nd "${#store_pids[@]}" \
      '. + {load1: ($load1|tonumber),
            upstream_cores: (($ecpu / $hz / $wall) * 100 | round / 100),
            proxy_cores: (if $np > 0 then (($pcpu / $hz / $wall) * 100 | round / 100) else null end),
            store_cores: (if $nd > 0 then (($dcpu / $hz / $wall) * 100 | round / 100) else null end),
            system_busy_cores: (($scpu / $hz / $wall) * 100 | round / 100)}
        | . + {other_cores: ((.system_busy_cores - .upstream_cores - (.proxy_cores // 0) - (.store_cores // 0) - (.loadgen_cores // 0)) * 100 | round / 100)}' <<<"$line")
  line=$(jq -c --argjson max "$DISTURBED_CORES" '. + {disturbed: (.other_cores > $max)}' <<<"$line")
  echo "$line" >>"$RESULTS"
  jq -r '"bench: \(.target)/\(.scenario): \(.rps) req/s, p50 \(.latency_ms.p50) ms, p99 \(.latency_ms.p99) ms, errors \(.errors)\(if .disturbed then ", DISTURBED (other processes used \(.other_cores) cores)" else "" end)"' <<<"$line" >&2
  [ "$(jq -r .disturbed <<<"$line")" = false ]
}
# run_retry: run_one, again (up to RETRIES times) while the machine was busy with other work.
run_retry() {
  local i
  for i in $(seq 0 "$RETRIES"); do
    run_one "$@" && return 0
    [ "$i" -lt "$RETRIES" ] && { log "retrying in 5 s"; sleep 5; }
  done
  return 0
}

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
# Scenario by scenario, each over all targets in turn, so slow drift in machine load hits them alike.
for round in $(seq "$ROUNDS"); do
  R=(--label round="$round")
  if [[ " $SCENARIOS " == *" get "* ]]; then for t in $TARGETS; do run_retry "$t" get "$GET_PATH" "$GET_CONNS" "$WARMUP" "$DURATION" "${R[@]}"; done; fi
  if [[ " $SCENARIOS " == *" get-1conn "* ]]; then for t in $TARGETS; do run_retry "$t" get-1conn "$GET_PATH" 1 1 "$LAT_DURATION" "${R[@]}"; done; fi
  if [[ " $SCENARIOS " == *" list "* ]]; then for t in $TARGETS; do run_retry "$t" list "$LIST_PATH" "$LIST_CONNS" "$WARMUP" "$DURATION" --expect-items "$LIST_COUNT" "${R[@]}"; done; fi
  if [[ " $SCENARIOS " == *" list-1conn "* ]]; then for t in $TARGETS; do run_retry "$t" list-1conn "$LIST_PATH" 1 1 "$LAT_DURATION" --expect-items "$LIST_COUNT" "${R[@]}"; done; fi
done
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)

# ---------------------------------------------------------------------------------------------
# Report
mkdir -p "$(dirname "$OUT")"
CPU_MODEL=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
NGINX_VERSION=$( (nginx -v 2>&1 || true) | sed 's/^nginx version: //')
REV=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
DIRTY=$(git status --porcelain 2>/dev/null | grep -qv '^??' && echo " (+ uncommitted changes)" || true)
{
  echo "## Load benchmark results, $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo
  echo "- machine: $(nproc) CPUs ($CPU_MODEL), kernel $(uname -r), $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo)"
  echo "- load average (1/5/15 min) before: $LOAD_BEFORE, after: $LOAD_AFTER"
  echo "- tree: $REV$DIRTY; nginx $NGINX_VERSION, worker_processes $NGINX_WORKERS${NGINX_PROXY_BUFFER_SIZE:+, proxy_buffer_size $NGINX_PROXY_BUFFER_SIZE}; loadgen threads $LOADGEN_THREADS"
  echo "- GET: \`$GET_PATH\`; LIST: \`$LIST_PATH\` ($LIST_COUNT $LIST_KIND, $(jq -s -r 'map(select(.scenario=="list"))[0].bytes_per_response // 0' "$RESULTS") bytes per response)"
  echo "- saturation runs: ${WARMUP}s warm-up + ${DURATION}s measured; 1-connection runs: 1s + ${LAT_DURATION}s"
  echo
  echo "CPU columns are cores busy during the run (warm-up included): the proxy, its PostgreSQL server (\"store\", with HP_STORE=postgres), the emulator, the load generator, and every other process on the machine (\"others\": disturbance from outside the benchmark). A run with others > $DISTURBED_CORES cores is marked disturbed and retried (up to $RETRIES times); a cell's ratios use its undisturbed runs when it has any."
  echo
  echo "| round | scenario | target | conns | req/s | p50 ms | p90 ms | p99 ms | p99.9 ms | errors | CPU proxy | CPU store | CPU emulator | CPU loadgen | CPU others | load1 |"
  echo "|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
  jq -r '"| \(.round)\(if .disturbed then " (disturbed)" else "" end) | \(.scenario) | \(.target) | \(.connections) | \(.rps) | \(.latency_ms.p50) | \(.latency_ms.p90) | \(.latency_ms.p99) | \(.latency_ms.p999) | \(.errors) | \(.proxy_cores // "-") | \(.store_cores // "-") | \(.upstream_cores) | \(.loadgen_cores // "-") | \(.other_cores) | \(.load1) |"' "$RESULTS"
  echo
  if [ "$ROUNDS" -gt 1 ]; then
    echo "Ratios below use, per scenario and target, the median over the $ROUNDS rounds of req/s and of p50 (undisturbed runs only, when a cell has any)."
    echo
  fi
  jq -s -r '
    def median: sort | if length == 0 then null else .[(length - 1) / 2 | floor] end;
    def r(s; t): map(select(.scenario == s and .target == t))
      | (map(select(.disturbed | not))) as $clean | (if ($clean | length) > 0 then $clean else . end)
      | if length == 0 then null
        else {connections: .[0].connections, rps: (map(.rps) | median),
              latency_ms: {p50: (map(.latency_ms.p50) | median)}} end;
    def num(x): if x == null then "n/a" else (x * 1000 | round / 1000 | tostring) end;
    def ratio(a; b): if a == null or b == null or b.rps == 0 then null else a.rps / b.rps end;
    def dp50(a; b): if a == null or b == null then null else a.latency_ms.p50 - b.latency_ms.p50 end;
    def verdict(x; ok): if x == null then "n/a" elif ok then "**met**" else "**not met**" end;
    (ratio(r("get"; "holdpoint"); r("get"; "nginx"))) as $gr
    | (dp50(r("get-1conn"; "holdpoint"); r("get-1conn"; "direct"))) as $gd1
    | (dp50(r("get"; "holdpoint"); r("get"; "direct"))) as $gd
    | (ratio(r("list"; "holdpoint"); r("list"; "nginx"))) as $lr
    | (dp50(r("list-1conn"; "holdpoint"); r("list-1conn"; "direct"))) as $ld1
    | (dp50(r("list"; "holdpoint"); r("list"; "direct"))) as $ld
    | (dp50(r("get-1conn"; "nginx"); r("get-1conn"; "direct"))) as $ngd1
    | (dp50(r("list-1conn"; "nginx"); r("list-1conn"; "direct"))) as $nld1
    | "| ratio | value | target | verdict |",
      "|---|---:|---|---|",
      "| GET throughput Holdpoint / nginx (\(r("get"; "nginx").connections // "?") conns) | \(num($gr))x | >= 0.9x | \(verdict($gr; ($gr // 0) >= 0.9)) |",
      "| GET p50 Holdpoint - direct, 1 connection (unloaded) | \(num($gd1)) ms | <= 0.2 ms | \(verdict($gd1; ($gd1 // 1e9) <= 0.2)) |",
      "| GET p50 Holdpoint - direct, \(r("get"; "direct").connections // "?") conns (saturated) | \(num($gd)) ms | (none; queueing-dominated) | - |",
      "| LIST throughput Holdpoint / nginx (\(r("list"; "nginx").connections // "?") conns) | \(num($lr))x | (none) | - |",
      "| LIST p50 Holdpoint - direct, 1 connection | \(num($ld1)) ms | (none) | - |",
      "| LIST p50 Holdpoint - direct, \(r("list"; "direct").connections // "?") conns | \(num($ld)) ms | (none) | - |",
      "| for reference: GET p50 nginx - direct, 1 connection | \(num($ngd1)) ms | | |",
      "| for reference: LIST p50 nginx - direct, 1 connection | \(num($nld1)) ms | | |",
      "| GET throughput Holdpoint audit on / off (\(r("get"; "holdpoint").connections // "?") conns) | \(num(ratio(r("get"; "holdpoint"); r("get"; "holdpoint-noaudit"))))x | >= 0.9x SQLite, >= 0.8x PostgreSQL | - |",
      "| GET p50 Holdpoint audit on - off, 1 connection | \(num(dp50(r("get-1conn"; "holdpoint"); r("get-1conn"; "holdpoint-noaudit")))) ms | (none) | - |",
      (ratio(r("list"; "holdpoint-nomask"); r("list"; "holdpoint"))) as $mr
      | (r("list-1conn"; "holdpoint")) as $m1 | (r("list-1conn"; "holdpoint-nomask")) as $n1
      | (if $m1 == null or $n1 == null or $n1.latency_ms.p50 == 0 then null else $m1.latency_ms.p50 / $n1.latency_ms.p50 end) as $mp
      | "| LIST cost of masking: throughput masking off / on (\(r("list"; "holdpoint").connections // "?") conns) | \(num($mr))x | <= 1.3x | \(verdict($mr; ($mr // 1e9) <= 1.3)) |",
        "| LIST cost of masking: p50 masking on / off, 1 connection | \(num($mp))x | <= 1.3x | \(verdict($mp; ($mp // 1e9) <= 1.3)) |"
  ' "$RESULTS"
  if [ "$ROUNDS" -gt 1 ]; then
    echo
    jq -s -r '
      def one(rd; s; t): map(select(.round == rd and .scenario == s and .target == t)) | last;
      def f(x): if x == null then "n/a" else (x * 1000 | round / 1000 | tostring) end;
      (map(.round) | unique) as $rounds
      | "Spread over rounds: GET throughput Holdpoint / nginx: "
        + ([$rounds[] as $rd | f(one($rd; "get"; "holdpoint").rps / one($rd; "get"; "nginx").rps)] | join(", "))
        + "; GET 1-connection p50 Holdpoint - direct (ms): "
        + ([$rounds[] as $rd | f(one($rd; "get-1conn"; "holdpoint").latency_ms.p50 - one($rd; "get-1conn"; "direct").latency_ms.p50)] | join(", "))
    ' "$RESULTS" 2>/dev/null || true
  fi
  echo
  echo "Errors are non-2xx responses or transport errors during the measured window; first error per run (if any):"
  echo
  jq -r 'select(.first_error != null) | "- \(.target)/\(.scenario): \(.first_error)"' "$RESULTS"
  echo
  echo "<details><summary>raw JSON lines</summary>"
  echo
  echo '```'
  cat "$RESULTS"
  echo '```'
  echo "</details>"
} >"$WORK/report.md"
cp "$WORK/report.md" "$OUT"
cp "$RESULTS" "${OUT%.md}.jsonl"
cat "$WORK/report.md"
log "written to $OUT"
