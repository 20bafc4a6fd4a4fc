#!/usr/bin/env bash
# Throughput benchmark (issue 12): in one run on this machine, the ceiling of
# each stage alone, then Kurier end to end on SQLite and PostgreSQL, and one
# summary. Starts the private services (services.sh), builds in release mode,
# runs a test authority and Kurier of its own, and stops them at the end
# (the services stay up: deploy/local/stop.sh stops them).
#
#   deploy/local/bench.sh                 # ceilings + end to end (a few minutes)
#   deploy/local/bench.sh --memory        # and: RSS with 100,000 queued, 100,000 parked
#   deploy/local/bench.sh --soak [N]      # and: N submissions (500,000) with RSS,
#                                         # threads, descriptors sampled over time
#   deploy/local/bench.sh --no-e2e --soak # a step alone: no ceilings, no end to end
#   deploy/local/bench.sh --no-ceilings   # end to end alone (while trying a change)
#
# Stage ceilings (tests/src/bin/stage-ceilings.rs), each ~KURIER_BENCH_SECONDS:
#   RabbitMQ publish+confirm and consume+ack on a quorum queue, and the
#   per-submission ceiling (consume+ack of a submission, publish+confirm of
#   its receipt event, the portal's consume+ack of it, all at once); the
#   authority's mTLS requests/s from Kurier's own client at max_in_flight;
#   receipts/s through Kurier's group commit on SQLite and PostgreSQL.
# End to end (tests/src/bin/kurier-load.rs, the four samples in turn):
#   submissions/s at full rate, percent of the lowest ceiling, p50/p99
#   publish→receipt at half that rate (and how much of it Kurier itself took,
#   from its log's elapsed_ms), CPU µs per submission (utime+stime of
#   the kurier process), peak RSS (VmHWM). Each measured end-to-end step
#   starts once the machine is quiet (`FIGURE settle …`: seconds waited).
#
# Environment: KURIER_RUN_DIR, KURIER_AMQP_PORT, KURIER_PG_PORT,
# KURIER_RABBIT_NODE as for services.sh; CARGO_TARGET_DIR; KURIER_BENCH_SECONDS
# (10), KURIER_BENCH_COUNT (20000 submissions at full rate),
# KURIER_BENCH_AUTHORITY_PORT (8743, control port +1), KURIER_BENCH_ADMIN_PORT
# (9390), KURIER_SOAK_RATE (default: 70 % of the SQLite full rate),
# KURIER_BENCH_BACKENDS ("sqlite postgres"), KURIER_BENCH_PREFETCH (Kurier's
# default when unset), KURIER_BENCH_KURIER (a kurier binary to measure instead
# of the one just built: an A/B of two commits in one sitting).
# Every figure is a `FIGURE name key=value …` line; all output is kept in
# $KURIER_RUN_DIR/bench/bench.log.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$(pwd)

MEMORY=0 SOAK=0 SOAK_COUNT=500000 E2E=1 CEILINGS=1
while (($#)); do
  case $1 in
    --memory) MEMORY=1 ;;
    --no-e2e) E2E=0 ;;
    --no-ceilings) CEILINGS=0 ;;
    --soak)
      SOAK=1
      if [[ ${2:-} =~ ^[0-9]+$ ]]; then SOAK_COUNT=$2; shift; fi
      ;;
    *) echo "usage: $0 [--no-e2e] [--no-ceilings] [--memory] [--soak [N]]" >&2; exit 2 ;;
  esac
  shift
done

RUN_DIR=${KURIER_RUN_DIR:-/tmp/kurier-local}
SECONDS_PER_STAGE=${KURIER_BENCH_SECONDS:-10}
COUNT=${KURIER_BENCH_COUNT:-20000}
AUTH_PORT=${KURIER_BENCH_AUTHORITY_PORT:-8743}
ADMIN_PORT=${KURIER_BENCH_ADMIN_PORT:-9390}
BENCH="$RUN_DIR/bench"
LOG="$BENCH/bench.log"
SAMPLES=(tests/samples/hzl-minimal.json tests/samples/hzl-full.json tests/samples/wbs-full.json tests/samples/buergergeld-wba.json)

bash deploy/local/services.sh --postgres
# shellcheck disable=SC1091
source "$RUN_DIR/env.sh"
cargo build --locked --release -p kurier -p kurier-e2e --bins
BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release"
KURIER_BIN=${KURIER_BENCH_KURIER:-$BIN/kurier}
mkdir -p "$BENCH"
: > "$LOG"

say() { printf '[bench] %s\n' "$*" | tee -a "$LOG" >&2; }
say "measuring $KURIER_BIN ($(sha256sum "$KURIER_BIN" | cut -c1-12))"
# Run a step, keeping its output in the log and showing its FIGURE lines.
step() {
  "$@" 2>&1 | tee -a "$LOG" | { grep --line-buffered -E '^FIGURE ' || true; }
  return "${PIPESTATUS[0]}"
}
loadavg() { cut -d' ' -f1-3 /proc/loadavg; }

# CPU accounting of a step: what the machine, RabbitMQ and the test
# authority spent on it (clock ticks of 10 ms), beside Kurier's own figure
# from kurier-load --pid. Shows whether the cores, not Kurier, are the limit.
TICK_US=$((1000000 / $(getconf CLK_TCK)))
rabbit_pid() { pgrep -f -- "beam.smp .*-home $RUN_DIR/rabbitmq( |\$)" | head -n1; }
ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat" 2>/dev/null || echo 0; }
busy_ticks() { awk '/^cpu / { t = 0; for (i = 2; i <= NF; i++) t += $i; print t - $5 - $6, t }' /proc/stat; }
# cpu_step NAME SUBMISSIONS COMMAND…: run a step, then print its CPU figure.
cpu_step() {
  local name=$1 n=$2 rabbit r0 a0 b0 t0 r1 a1 b1 t1 rc=0
  shift 2
  rabbit=$(rabbit_pid)
  r0=$(ticks "${rabbit:-0}") a0=$(ticks "$AUTHORITY")
  read -r b0 t0 < <(busy_ticks)
  step "$@" || rc=$?
  r1=$(ticks "${rabbit:-0}") a1=$(ticks "$AUTHORITY")
  read -r b1 t1 < <(busy_ticks)
  awk -v name="$name" -v n="$n" -v us="$TICK_US" -v cores="$(nproc)" \
    -v r=$((r1 - r0)) -v a=$((a1 - a0)) -v b=$((b1 - b0)) -v t=$((t1 - t0)) 'BEGIN {
      if (n <= 0 || t <= 0) exit
      m = b * us / n
      printf "FIGURE %s machine_busy_pct=%.0f machine_cpu_us_per_submission=%.0f rabbitmq_cpu_us_per_submission=%.0f authority_cpu_us_per_submission=%.0f machine_bound_per_s=%.0f\n",
        name, 100 * b / t, m, r * us / n, a * us / n, cores * 1000000 / m
    }' | tee -a "$LOG"
  return "$rc"
}

# Wait until the machine is quiet (under 15 % busy over a second, at most
# 60 s) before a measured step: after a full-rate run RabbitMQ goes on
# working on its quorum queue's log for a while, and a step started at once
# measures that too (run E in docs/PERFORMANCE.md). Prints how long it took.
settle() { # NAME
  local a b waited=0
  while ((waited < 60)); do
    a=($(busy_ticks)); sleep 1; b=($(busy_ticks)); waited=$((waited + 1))
    (( (b[0] - a[0]) * 100 < 15 * (b[1] - a[1]) )) && break
  done
  echo "FIGURE settle $1 seconds=$waited" | tee -a "$LOG"
}

PIDS=()
cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT

[[ -f "$BENCH/certs/kurier.pem" ]] || "$BIN/gen-certs" "$BENCH/certs" >/dev/null

# One test authority for every destination, keeping no bodies in memory.
"$BIN/test-authority" --listen "127.0.0.1:$AUTH_PORT" --control "127.0.0.1:$((AUTH_PORT + 1))" \
  --cert "$BENCH/certs/authority.pem" --key "$BENCH/certs/authority.key" \
  --client-ca "$BENCH/certs/kurier-ca.pem" --keep-bodies false > "$BENCH/authority.log" 2>&1 &
AUTHORITY=$!
PIDS+=("$AUTHORITY")
# It prints one JSON line once it listens; a port taken by another process
# (another engineer's authority, say) must stop the bench, not feed it.
for _ in $(seq 1 50); do
  grep -q '"https"' "$BENCH/authority.log" 2>/dev/null && break
  kill -0 "$AUTHORITY" 2>/dev/null || break
  sleep 0.1
done
if ! grep -q '"https"' "$BENCH/authority.log"; then
  say "the test authority did not start on 127.0.0.1:$AUTH_PORT (KURIER_BENCH_AUTHORITY_PORT):"
  head -n 3 "$BENCH/authority.log" >&2
  exit 1
fi
authority_mode() { curl -fsS -X PUT --data "$1" "http://127.0.0.1:$((AUTH_PORT + 1))/mode" >/dev/null; }

destination_toml() { # ID ADAPTER PATH: one destination on the test authority
  cat <<DEST

[[destinations]]
id = "$1"
adapter = "$2"
endpoint = "https://localhost:$AUTH_PORT/$3/antraege"
ca_file = "$BENCH/certs/authority-ca.pem"
client_cert_file = "$BENCH/certs/kurier.pem"
client_key_file = "$BENCH/certs/kurier.key"
DEST
}

# kurier.toml for a backend: DIR DATABASE_URL (the demo's destinations,
# everything else Kurier's defaults).
write_config() {
  mkdir -p "$1"
  {
    cat <<TOML
# Written by deploy/local/bench.sh.
shutdown_grace_secs = 5

[amqp]
url = "$KURIER_TEST_AMQP_URL"
${KURIER_BENCH_PREFETCH:+prefetch = $KURIER_BENCH_PREFETCH}

[database]
url = "$2"

[admin]
listen = "127.0.0.1:$ADMIN_PORT"
TOML
    destination_toml sozialamt-koeln xsozial-hzl sozialamt-koeln
    destination_toml wohnungsamt-dortmund wbs-nrw wohnungsamt-dortmund
    destination_toml jobcenter-kreis-offenbach xfall jobcenter
  } > "$1/kurier.toml"
}

pg_fresh() { # DATABASE: dropped and created empty
  psql "$KURIER_TEST_POSTGRES_URL" -qX -c "DROP DATABASE IF EXISTS $1" -c "CREATE DATABASE $1" >/dev/null
}
PG_URL_BASE=${KURIER_TEST_POSTGRES_URL%/*}

# A fresh database for BACKEND (sqlite|postgres); prints its URL.
fresh_database() {
  if [[ $1 == sqlite ]]; then
    rm -f "$BENCH/sqlite/kurier.db" "$BENCH/sqlite/kurier.db-wal" "$BENCH/sqlite/kurier.db-shm"
    echo "sqlite://$BENCH/sqlite/kurier.db"
  else
    pg_fresh kurier_bench
    echo "$PG_URL_BASE/kurier_bench"
  fi
}

KURIER=""
start_kurier() { # BACKEND
  if curl -fsS "http://127.0.0.1:$ADMIN_PORT/readyz" >/dev/null 2>&1; then
    say "127.0.0.1:$ADMIN_PORT answers already: another Kurier (KURIER_BENCH_ADMIN_PORT)"
    exit 1
  fi
  write_config "$BENCH/$1" "$(fresh_database "$1")"
  export KURIER_CONFIG="$BENCH/$1/kurier.toml"
  "$KURIER_BIN" run > "$BENCH/kurier-$1.log" 2>&1 &
  KURIER=$!
  PIDS+=("$KURIER")
  for _ in $(seq 1 60); do
    curl -fsS "http://127.0.0.1:$ADMIN_PORT/readyz" >/dev/null 2>&1 && return
    kill -0 "$KURIER" 2>/dev/null || break
    sleep 0.5
  done
  say "Kurier did not become ready; see $BENCH/kurier-$1.log"
  tail -n 20 "$BENCH/kurier-$1.log" >&2
  exit 1
}
stop_kurier() {
  kill "$KURIER" 2>/dev/null || true
  wait "$KURIER" 2>/dev/null || true
}

load() { "$BIN/kurier-load" --sample "${SAMPLES[@]}" "$@"; }

# Kurier's own share of a step's latency: the `elapsed_ms` of its one log line
# per submission (from the delivery's arrival to the committed, acked outcome)
# over the last $2 submissions of log $3. The rest of publish→receipt is
# RabbitMQ's way in, the outbox relay and RabbitMQ's way out to the portal.
inside() {
  local p
  p=$(sed 's/\x1b\[[0-9;]*m//g' "$3" | grep 'submission finished' \
    | sed -n 's/.* elapsed_ms=\([0-9]*\).*/\1/p' | tail -n "$2" | sort -n \
    | awk '{ v[NR] = $1 } END { if (NR) printf "p50_ms=%d p90_ms=%d p99_ms=%d submissions=%d", v[int(NR * 0.5) + 1], v[int(NR * 0.9) + 1], v[int(NR * 0.99) + 1], NR }')
  echo "FIGURE $1 $p" | tee -a "$LOG"
}

# FIGURE line helpers (as bench-delivery.sh).
figure() { grep -m1 -E "^FIGURE $1( |$)" "$LOG" || true; }
field() { sed -n "s/.* $2=\([^ ]*\).*/\1/p" <<<"$1"; }

say "load average at start: $(loadavg) ($(nproc) cores)"
echo "FIGURE bench_start load=$(loadavg | tr ' ' ,) cores=$(nproc) seconds_per_stage=$SECONDS_PER_STAGE" | tee -a "$LOG"

if [[ $E2E -eq 1 && $CEILINGS -eq 1 ]]; then
  say "stage ceilings, each alone (${SECONDS_PER_STAGE} s each)"
  write_config "$BENCH/ceiling" "sqlite://$BENCH/ceiling/unused.db"
  step "$BIN/stage-ceilings" rabbitmq --config "$BENCH/ceiling/kurier.toml" \
    --seconds "$SECONDS_PER_STAGE" --sample "${SAMPLES[@]}"
  step "$BIN/stage-ceilings" authority --config "$BENCH/ceiling/kurier.toml" \
    --seconds "$SECONDS_PER_STAGE"
  rm -f "$BENCH/ceiling/receipts.db"*
  step "$BIN/stage-ceilings" database --label sqlite --url "sqlite://$BENCH/ceiling/receipts.db" \
    --seconds "$SECONDS_PER_STAGE"
  pg_fresh kurier_bench_ceiling
  step "$BIN/stage-ceilings" database --label postgres --url "$PG_URL_BASE/kurier_bench_ceiling" \
    --seconds "$SECONDS_PER_STAGE"
fi
if [[ $E2E -eq 1 ]]; then
  for backend in ${KURIER_BENCH_BACKENDS:-sqlite postgres}; do
    say "Kurier end to end on $backend"
    start_kurier "$backend"
    load --count 2000 > /dev/null  # warm-up: connections, TLS sessions, limiter
    settle "before_max backend=$backend"
    cpu_step "e2e_max_cpu backend=$backend" "$COUNT" \
      load --count "$COUNT" --pid "$KURIER" --figure "e2e_max backend=$backend"
    max=$(field "$(figure "e2e_max backend=$backend")" per_s)
    half=$(( ${max:-0} / 2 ))
    if ((half > 0)); then
      settle "before_half backend=$backend"
      step load --count "$((half * SECONDS_PER_STAGE))" --rate "$half" --pid "$KURIER" \
        --figure "e2e_half backend=$backend"
      inside "e2e_half_inside backend=$backend" "$((half * SECONDS_PER_STAGE))" \
        "$BENCH/kurier-$backend.log"
    fi
    stop_kurier
  done
fi

if [[ $MEMORY -eq 1 ]]; then
  say "memory: 100,000 submissions published at full rate (queued ahead of Kurier)"
  start_kurier sqlite
  step load --count 100000 --pid "$KURIER" --watch-every 5 --metrics "127.0.0.1:$ADMIN_PORT" \
    --timeout-secs 1200 --figure "memory_queued backend=sqlite"
  stop_kurier
  say "memory: 100,000 submissions parked (the authority answers 503, Retry-After: 3600)"
  start_kurier sqlite
  authority_mode '{"mode":"fail","status":503,"retry_after":3600}'
  step load --count 100000 --pid "$KURIER" --watch-every 5 --metrics "127.0.0.1:$ADMIN_PORT" \
    --timeout-secs 1200 --figure "memory_parked backend=sqlite"
  # The gauge is refreshed from the database every few seconds.
  for _ in $(seq 1 30); do
    parked=$(curl -fsS "http://127.0.0.1:$ADMIN_PORT/metrics" | awk '/^kurier_parked[{ ]/ { n += $NF } END { print n + 0 }')
    ((parked >= 100000)) && break
    sleep 1
  done
  echo "FIGURE memory_parked_gauge parked=$parked" | tee -a "$LOG"
  authority_mode '{"mode":"accept"}'
  stop_kurier
fi

if [[ $SOAK -eq 1 ]]; then
  rate=${KURIER_SOAK_RATE:-}
  if [[ -z $rate ]]; then
    max=$(field "$(figure "e2e_max backend=sqlite")" per_s)
    rate=$(( ${max:-1430} * 7 / 10 ))
  fi
  say "long run: $SOAK_COUNT submissions at $rate/s on sqlite, sampled every 10 s"
  start_kurier sqlite
  step load --count "$SOAK_COUNT" --rate "$rate" --pid "$KURIER" --watch-every 10 \
    --metrics "127.0.0.1:$ADMIN_PORT" --timeout-secs 7200 --figure "soak backend=sqlite"
  stop_kurier
fi

echo "FIGURE bench_end load=$(loadavg | tr ' ' ,)" | tee -a "$LOG"

# ------------------------------------------------------------------ summary
fmt() { # an integer, or "-"
  if [[ ${1:-} =~ ^[0-9]+ ]]; then printf '%s' "${BASH_REMATCH[0]}"; else printf -- -; fi
}
echo
echo "== Kurier benchmark $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, load average $(field "$(figure bench_start)" load) → $(field "$(figure bench_end)" load) =="
if [[ $E2E -eq 1 ]]; then
  pub=$(figure ceiling_rabbitmq_publish) con=$(figure ceiling_rabbitmq_consume)
  per=$(figure ceiling_rabbitmq_per_submission) auth=$(figure ceiling_authority)
  rabbit=$(field "$per" submissions_per_s) authority=$(field "$auth" requests_per_s)
  printf '%-58s %12s\n' "stage ceiling, alone" "per second"
  printf '%-58s %12s\n' "RabbitMQ publish+confirm (quorum, persistent)" "$(fmt "$(field "$pub" msgs_per_s)")"
  printf '%-58s %12s\n' "RabbitMQ consume+ack (prefetch $(field "$con" prefetch))" "$(fmt "$(field "$con" msgs_per_s)")"
  printf '%-58s %12s\n' "RabbitMQ per submission (consume+ack, event pub+confirm+consume)" "$(fmt "$rabbit")"
  printf '%-58s %12s\n' "authority mTLS, Kurier's client, $(field "$auth" concurrency) in flight" "$(fmt "$authority")"
  for backend in sqlite postgres; do
    db=$(field "$(figure "ceiling_database backend=$backend")" receipts_per_s)
    printf '%-58s %12s\n' "database receipts, group commit ($backend)" "$(fmt "$db")"
  done
  echo
  printf '%-40s %14s %14s\n' "Kurier end to end" sqlite postgres
  row() { printf '%-40s %14s %14s\n' "$1" "$2" "$3"; }
  declare -A v
  for backend in sqlite postgres; do
    m=$(figure "e2e_max backend=$backend") h=$(figure "e2e_half backend=$backend")
    db=$(field "$(figure "ceiling_database backend=$backend")" receipts_per_s)
    lowest=$(printf '%s\n' "$rabbit" "$authority" "$db" | { grep -E '^[0-9]' || true; } | sort -n | head -n1)
    per_s=$(field "$m" per_s)
    v[$backend.per_s]=$(fmt "$per_s")
    v[$backend.lowest]=$(fmt "$lowest")
    v[$backend.pct]=$(awk -v a="${per_s:-0}" -v b="${lowest:-0}" 'BEGIN { if (b > 0) printf "%.0f %%", 100 * a / b; else print "-" }')
    v[$backend.lat]="$(field "$h" p50_ms) / $(field "$h" p99_ms)"
    v[$backend.rate]=$(field "$h" rate)
    i=$(figure "e2e_half_inside backend=$backend")
    v[$backend.inside]="$(field "$i" p50_ms) / $(field "$i" p99_ms)"
    v[$backend.cpu]=$(field "$m" cpu_us_per_submission)
    v[$backend.cores]=$(field "$m" cores)
    c=$(figure "e2e_max_cpu backend=$backend")
    v[$backend.busy]="$(field "$c" machine_busy_pct) %"
    v[$backend.machine]=$(field "$c" machine_cpu_us_per_submission)
    v[$backend.rabbit]=$(field "$c" rabbitmq_cpu_us_per_submission)
    v[$backend.auth]=$(field "$c" authority_cpu_us_per_submission)
    v[$backend.bound]=$(field "$c" machine_bound_per_s)
    # VmHWM after the last run on this Kurier: the peak of both runs.
    peak=$(field "$h" rss_peak_kib)
    peak=${peak:-$(field "$m" rss_peak_kib)}
    v[$backend.rss]=$(awk -v k="${peak:-0}" 'BEGIN { if (k > 0) printf "%.1f MiB", k / 1024; else print "-" }')
  done
  row "submissions/s (full rate, $COUNT)" "${v[sqlite.per_s]}" "${v[postgres.per_s]}"
  row "lowest stage ceiling" "${v[sqlite.lowest]}" "${v[postgres.lowest]}"
  row "percent of lowest ceiling" "${v[sqlite.pct]}" "${v[postgres.pct]}"
  row "p50 / p99 ms at half rate" "${v[sqlite.lat]}" "${v[postgres.lat]}"
  row "  (half rate, submissions/s)" "${v[sqlite.rate]}" "${v[postgres.rate]}"
  row "  of which inside Kurier, p50 / p99 ms" "${v[sqlite.inside]}" "${v[postgres.inside]}"
  row "CPU µs per submission (full rate)" "${v[sqlite.cpu]}" "${v[postgres.cpu]}"
  row "  (cores used by kurier)" "${v[sqlite.cores]}" "${v[postgres.cores]}"
  row "peak RSS (VmHWM)" "${v[sqlite.rss]}" "${v[postgres.rss]}"
  row "machine busy at full rate" "${v[sqlite.busy]}" "${v[postgres.busy]}"
  row "CPU µs per submission, whole machine" "${v[sqlite.machine]}" "${v[postgres.machine]}"
  row "  of which RabbitMQ" "${v[sqlite.rabbit]}" "${v[postgres.rabbit]}"
  row "  of which the test authority" "${v[sqlite.auth]}" "${v[postgres.auth]}"
  row "cores ÷ machine CPU per submission, /s" "${v[sqlite.bound]}" "${v[postgres.bound]}"
fi
if [[ $MEMORY -eq 1 ]]; then
  echo
  for what in queued parked; do
    f=$(figure "memory_$what backend=sqlite")
    printf 'memory, 100,000 %-7s peak RSS %s MiB, %s /s, flat=%s (target: < 100 MiB)\n' "$what" \
      "$(awk -v k="$(field "$f" rss_peak_kib)" 'BEGIN { printf "%.1f", k / 1024 }')" \
      "$(field "$f" per_s)" "$(field "$f" flat)"
  done
fi
if [[ $SOAK -eq 1 ]]; then
  f=$(figure "soak backend=sqlite")
  printf 'long run, %s submissions at %s/s: RSS peak %s → %s KiB, threads %s → %s, fds %s → %s, flat=%s\n' \
    "$(field "$f" submissions)" "$(field "$f" rate)" \
    "$(field "$f" rss_peak_first_half_kib)" "$(field "$f" rss_peak_second_half_kib)" \
    "$(field "$f" threads_peak_first_half)" "$(field "$f" threads_peak_second_half)" \
    "$(field "$f" fds_peak_first_half)" "$(field "$f" fds_peak_second_half)" "$(field "$f" flat)"
fi
echo "(all output: $LOG)"
