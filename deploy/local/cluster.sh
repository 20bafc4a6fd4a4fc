#!/usr/bin/env bash
# Kurier scaled out on loopback: a 3-node RabbitMQ cluster (quorum queues
# replicated on all three), PostgreSQL (services.sh's), the mTLS test
# authority and N Kurier instances that fail over between the three nodes
# ([amqp] urls). The sample submissions flow end to end.
#
#   deploy/local/cluster.sh [start]      # cluster, PostgreSQL, authority, $KURIER_INSTANCES (2) Kurier
#   deploy/local/cluster.sh services     # only the cluster and PostgreSQL ($KURIER_RUN_DIR/cluster/env.sh)
#   deploy/local/cluster.sh test         # cluster and PostgreSQL, then tests/tests/cluster.rs
#   deploy/local/cluster.sh stop         # stops what start/test started
#
# Idempotent: a node, instance or service that runs is left as it is; a
# node that is down (e.g. killed by the test) is started again and rejoins.
# State lives under $KURIER_RUN_DIR/cluster (default /tmp/kurier-local).
# Ports: AMQP $KURIER_CLUSTER_PORTS ("5782 5783 5784"; Erlang distribution on
# each plus 20000), PostgreSQL $KURIER_PG_PORT (5433), test authority
# $KURIER_CLUSTER_AUTHORITY_PORT (8782, control +1), Kurier admin
# $KURIER_CLUSTER_ADMIN_PORT (9782, +1 per instance). Node names
# kurier-c1@localhost … kurier-c3@localhost ($KURIER_CLUSTER_NODE: kurier-c).
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$(pwd)
export KURIER_RUN_DIR=${KURIER_RUN_DIR:-/tmp/kurier-local}
RUN_DIR=$KURIER_RUN_DIR
DIR="$RUN_DIR/cluster"
read -r -a PORTS <<< "${KURIER_CLUSTER_PORTS:-5782 5783 5784}"
PG_PORT=${KURIER_PG_PORT:-5433}
INSTANCES=${KURIER_INSTANCES:-2}
AUTHORITY_PORT=${KURIER_CLUSTER_AUTHORITY_PORT:-8782}
ADMIN_PORT=${KURIER_CLUSTER_ADMIN_PORT:-9782}
NODE_PREFIX=${KURIER_CLUSTER_NODE:-kurier-c}
PROFILE=${KURIER_PROFILE:-debug}
BIN="${CARGO_TARGET_DIR:-$ROOT/target}/$PROFILE"
CTL=/usr/lib/rabbitmq/bin/rabbitmqctl
ACTION=${1:-start}

log() { printf '[cluster] %s\n' "$*" >&2; }

node_name() { echo "$NODE_PREFIX$1@localhost"; }

# The environment of node $1 (1..3), as services.sh sets it for its one
# node: every node has its own ports, data and logs; HOME holds the one
# Erlang cookie that the nodes and rabbitmqctl share.
node_env() {
  local i=$1 port=${PORTS[$(($1 - 1))]}
  export HOME="$DIR"
  export RABBITMQ_NODENAME
  RABBITMQ_NODENAME=$(node_name "$i")
  export RABBITMQ_NODE_IP_ADDRESS=127.0.0.1
  export RABBITMQ_NODE_PORT=$port
  export RABBITMQ_DIST_PORT=$((port + 20000))
  export RABBITMQ_MNESIA_BASE="$DIR/c$i/mnesia"
  export RABBITMQ_LOG_BASE="$DIR/c$i/log"
  export RABBITMQ_CONFIG_FILE="$DIR/c$i/rabbitmq"
  export RABBITMQ_ENABLED_PLUGINS_FILE="$DIR/c$i/enabled_plugins"
  export RABBITMQ_PID_FILE="$DIR/c$i/rabbitmq.pid"
  export ERL_EPMD_ADDRESS=127.0.0.1
}

ctl() { (node_env "$1" && shift && "$CTL" -q -n "$RABBITMQ_NODENAME" "$@"); }

running() { ctl "$1" status >/dev/null 2>&1; }

start_node() {
  local i=$1
  mkdir -p "$DIR/c$i/mnesia" "$DIR/c$i/log"
  if running "$i"; then
    log "$(node_name "$i") already running on 127.0.0.1:${PORTS[$((i - 1))]}"
    return
  fi
  cat > "$DIR/c$i/rabbitmq.conf" <<CONF
loopback_users = none
listeners.tcp.default = 127.0.0.1:${PORTS[$((i - 1))]}
cluster_name = kurier-local
CONF
  echo '[].' > "$DIR/c$i/enabled_plugins"
  log "starting $(node_name "$i") on 127.0.0.1:${PORTS[$((i - 1))]}"
  (node_env "$i" && /usr/lib/rabbitmq/bin/rabbitmq-server -detached)
  for _ in $(seq 1 60); do
    if ctl "$i" await_startup --timeout 5 >/dev/null 2>&1; then return; fi
    sleep 1
  done
  log "$(node_name "$i") did not start; see $DIR/c$i/log"
  tail -n 30 "$DIR/c$i"/log/*.log >&2 || true
  exit 1
}

# Nodes 2 and 3 join node 1 once; afterwards a restarted node rejoins by
# itself (its data directory remembers the cluster).
join_node() {
  local i=$1
  [[ -f "$DIR/c$i/joined" ]] && return
  log "$(node_name "$i") joins $(node_name 1)"
  # (rabbitmqctl 3.10 prints harmless feature-flag warnings while joining.)
  local out="$DIR/c$i/log/join.log"
  {
    ctl "$i" stop_app
    ctl "$i" reset
    ctl "$i" join_cluster "$(node_name 1)"
    ctl "$i" start_app
  } >/dev/null 2>>"$out"
  touch "$DIR/c$i/joined"
}

start_cluster() {
  mkdir -p "$DIR"
  if [[ ! -f "$DIR/.erlang.cookie" ]]; then
    (umask 077 && head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$DIR/.erlang.cookie")
  fi
  chmod 400 "$DIR/.erlang.cookie"
  start_node 1
  if [[ ! -f "$DIR/c1/defined" ]]; then
    # The portals' and Kurier's users and permissions (guest stays for
    # loopback), once: the other nodes get them when they join.
    ctl 1 import_definitions "$ROOT/deploy/rabbitmq/definitions.json" >/dev/null
    touch "$DIR/c1/defined"
  fi
  for i in 2 3; do
    start_node "$i"
    join_node "$i"
  done
  ctl 1 await_online_nodes 3 >/dev/null 2>&1 || ctl 1 cluster_status >&2
  log "RabbitMQ cluster: $(node_name 1), $(node_name 2), $(node_name 3)"
}

urls() {
  local i out=()
  for i in 1 2 3; do out+=("amqp://guest:guest@127.0.0.1:${PORTS[$((i - 1))]}/%2f"); done
  (IFS=,; echo "${out[*]}")
}

write_env() {
  local ctl_cmd
  ctl_cmd="env HOME=$DIR ERL_EPMD_ADDRESS=127.0.0.1 $CTL"
  cat > "$DIR/env.sh" <<ENV
export KURIER_TEST_CLUSTER_URLS=$(urls)
export KURIER_TEST_CLUSTER_NODES=$(node_name 1),$(node_name 2),$(node_name 3)
export KURIER_TEST_CLUSTER_PID_FILES=$DIR/c1/rabbitmq.pid,$DIR/c2/rabbitmq.pid,$DIR/c3/rabbitmq.pid
export KURIER_TEST_CLUSTER_CTL="$ctl_cmd"
export KURIER_TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:$PG_PORT/postgres
ENV
  log "environment in $DIR/env.sh"
}

build() {
  if [[ ${KURIER_NO_BUILD:-0} == 1 ]]; then return; fi
  if [[ $PROFILE == release ]]; then
    cargo build --locked --release --workspace --bins
  else
    cargo build --locked --workspace --bins
  fi
}

pg_database() {
  local bin
  bin=$(find /usr/lib/postgresql -maxdepth 2 -name bin -type d | sort -V | tail -n 1)
  if ! "$bin/psql" -h 127.0.0.1 -p "$PG_PORT" -U postgres -tAc \
    "SELECT 1 FROM pg_database WHERE datname = 'kurier_cluster'" | grep -q 1; then
    "$bin/psql" -h 127.0.0.1 -p "$PG_PORT" -U postgres -qc "CREATE DATABASE kurier_cluster"
  fi
}

start_authority() {
  local certs="$DIR/certs"
  [[ -f "$certs/kurier.pem" ]] || "$BIN/gen-certs" "$certs"
  if [[ -f "$DIR/authority.pid" ]] && kill -0 "$(cat "$DIR/authority.pid")" 2>/dev/null; then
    return
  fi
  "$BIN/test-authority" --listen "127.0.0.1:$AUTHORITY_PORT" --control "127.0.0.1:$((AUTHORITY_PORT + 1))" \
    --cert "$certs/authority.pem" --key "$certs/authority.key" \
    --client-ca "$certs/kurier-ca.pem" > "$DIR/authority.out" 2> "$DIR/authority.log" &
  echo $! > "$DIR/authority.pid"
}

# Instance $1's configuration: the demo's, with the three nodes, PostgreSQL
# and an admin port of its own.
instance_config() {
  local n=$1 nodes
  nodes=$(urls | sed 's/,/", "/g')
  sed -e "s|@DEMO@|$DIR|g" \
    -e "s|^url = \"amqp://.*|urls = [\"$nodes\"]|" \
    -e "s|^url = \"sqlite://.*|url = \"postgres://postgres@127.0.0.1:$PG_PORT/kurier_cluster\"|" \
    -e "s|^listen = .*|listen = \"127.0.0.1:$((ADMIN_PORT + n - 1))\"|" \
    -e "s|^token_file = .*|token_file = \"$DIR/admin.tokens\"|" \
    -e "s|https://localhost:8443/|https://localhost:$AUTHORITY_PORT/|" \
    deploy/local/kurier.local.toml > "$DIR/kurier-$n.toml"
  # [vault] key_file is vault.key beside the files: one key for the
  # instances, which share the database.
}

start_instances() {
  if [[ ! -f "$DIR/admin.tokens" ]]; then
    (umask 077; echo "cluster:read,operate,view_payload:$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')" > "$DIR/admin.tokens")
  fi
  local n
  for n in $(seq 1 "$INSTANCES"); do
    instance_config "$n"
    if [[ -f "$DIR/kurier-$n.pid" ]] && kill -0 "$(cat "$DIR/kurier-$n.pid")" 2>/dev/null; then
      log "Kurier instance $n already running"
      continue
    fi
    KURIER_CONFIG="$DIR/kurier-$n.toml" "$BIN/kurier" check-config >/dev/null
    KURIER_CONFIG="$DIR/kurier-$n.toml" "$BIN/kurier" run >> "$DIR/kurier-$n.log" 2>&1 &
    echo $! > "$DIR/kurier-$n.pid"
    log "Kurier instance $n: admin 127.0.0.1:$((ADMIN_PORT + n - 1)), log $DIR/kurier-$n.log"
    # The first instance migrates the database; the others start after it.
    for _ in $(seq 1 60); do
      curl -fs "http://127.0.0.1:$((ADMIN_PORT + n - 1))/readyz" >/dev/null 2>&1 && break
      sleep 1
    done
  done
}

stop_all() {
  local f
  for f in "$DIR"/kurier-*.pid "$DIR/authority.pid"; do
    [[ -f $f ]] || continue
    kill "$(cat "$f")" 2>/dev/null && log "stopped $(basename "$f" .pid)"
    rm -f "$f"
  done
  for i in 3 2 1; do
    if running "$i"; then ctl "$i" stop >/dev/null 2>&1 && log "stopped $(node_name "$i")"; fi
  done
  # PostgreSQL is services.sh's: stop.sh stops it.
  if [[ -f "$RUN_DIR/postgres/postmaster.pid" ]]; then
    log "PostgreSQL on 127.0.0.1:$PG_PORT keeps running (deploy/local/stop.sh stops it)"
  fi
}

case $ACTION in
  start)
    KURIER_PG_PORT=$PG_PORT bash deploy/local/services.sh --postgres-only
    start_cluster
    write_env
    build
    pg_database
    start_authority
    start_instances
    log "queue members: $(ctl 1 list_queues name type members | awk '$1 == "kurier.intake"')"
    KURIER_CONFIG="$DIR/kurier-1.toml" "$BIN/kurier" submit tests/samples/*.json
    for _ in $(seq 1 60); do
      n=$(KURIER_CONFIG="$DIR/kurier-1.toml" "$BIN/kurier" receipts list --json | grep -c '"submission_id"' || true)
      [[ $n -ge 4 ]] && break
      sleep 1
    done
    KURIER_CONFIG="$DIR/kurier-1.toml" "$BIN/kurier" receipts list
    cat <<INFO

$INSTANCES Kurier instances consume from the cluster (logs $DIR/kurier-<n>.log).
  export KURIER_CONFIG=$DIR/kurier-1.toml
  source $DIR/env.sh; \$KURIER_TEST_CLUSTER_CTL -n $(node_name 1) list_queues name members
  deploy/local/cluster.sh stop
INFO
    ;;
  services)
    KURIER_PG_PORT=$PG_PORT bash deploy/local/services.sh --postgres-only
    start_cluster
    write_env
    ;;
  test)
    KURIER_PG_PORT=$PG_PORT bash deploy/local/services.sh --postgres-only
    start_cluster
    write_env
    build
    # shellcheck disable=SC1091
    source "$DIR/env.sh"
    status=0
    cargo test --locked -p kurier-e2e --test cluster -- --nocapture || status=$?
    # The test killed a node: start it again, it rejoins the cluster.
    start_cluster
    exit "$status"
    ;;
  stop)
    stop_all
    ;;
  *)
    echo "usage: deploy/local/cluster.sh [start|services|test|stop]" >&2
    exit 2
    ;;
esac
