#!/usr/bin/env bash
# Start a private RabbitMQ node and (optionally) a private PostgreSQL cluster on
# loopback, installing the Debian packages first if they are missing (also the
# ones the build needs for XSD validation: libxml2-dev, pkg-config, libclang-dev).
# Idempotent: what is already running is left as it is.
#
#   deploy/local/services.sh [--postgres]
#   deploy/local/services.sh --postgres-only   # no RabbitMQ node (cluster.sh runs its own)
#
# State lives under $KURIER_RUN_DIR (default /tmp/kurier-local). Ports:
# AMQP $KURIER_AMQP_PORT (5672), PostgreSQL $KURIER_PG_PORT (5433), RabbitMQ
# node name $KURIER_RABBIT_NODE (kurier).
# Source deploy/local/env.sh afterwards for the URLs.
set -euo pipefail

RUN_DIR=${KURIER_RUN_DIR:-/tmp/kurier-local}
AMQP_PORT=${KURIER_AMQP_PORT:-5672}
# A TLS listener beside the plaintext one, for amqps:// (certificates made here).
AMQPS_PORT=${KURIER_AMQPS_PORT:-$((AMQP_PORT + 1))}
PG_PORT=${KURIER_PG_PORT:-5433}
# A second private set of services beside the first needs its own node name
# and ports: KURIER_RABBIT_NODE, KURIER_AMQP_PORT, KURIER_PG_PORT.
NODE=${KURIER_RABBIT_NODE:-kurier}@localhost
WANT_PG=0
WANT_RABBIT=1
case "${1:-}" in
  --postgres) WANT_PG=1 ;;
  --postgres-only) WANT_PG=1 WANT_RABBIT=0 ;;
esac

log() { printf '[services] %s\n' "$*" >&2; }

as_root() { if [[ $(id -u) -eq 0 ]]; then "$@"; else sudo "$@"; fi; }

# Installed means installed as a Debian package: file globs mislead (e.g.
# libclang-cpp.so.14 is present without libclang-dev, and bindgen then fails).
installed() { [[ $(dpkg-query -W -f='${Status}' "$1" 2>/dev/null) == "install ok installed" ]]; }

ensure_packages() {
  local missing=() pkg
  # Building the `libxml` crate (XSD validation of rendered documents) needs
  # libxml2's headers found through pkg-config, and libclang for bindgen.
  local wanted=(rabbitmq-server libxml2-utils curl openssl pkg-config libxml2-dev libclang-dev)
  [[ $WANT_PG -eq 1 ]] && wanted+=(postgresql)
  for pkg in "${wanted[@]}"; do installed "$pkg" || missing+=("$pkg"); done
  if ((${#missing[@]})); then
    log "installing ${missing[*]}"
    as_root apt-get update -qq
    # The packages' own services must not start: we run private instances.
    printf '#!/bin/sh\nexit 101\n' | as_root tee /usr/sbin/policy-rc.d >/dev/null
    as_root chmod +x /usr/sbin/policy-rc.d
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "${missing[@]}" >/dev/null
    as_root rm -f /usr/sbin/policy-rc.d
  fi
}

rabbit_env() {
  export HOME="$RUN_DIR/rabbitmq"          # .erlang.cookie lives here
  export RABBITMQ_NODENAME=$NODE
  export RABBITMQ_NODE_IP_ADDRESS=127.0.0.1
  export RABBITMQ_NODE_PORT=$AMQP_PORT
  export RABBITMQ_DIST_PORT=$((AMQP_PORT + 20000))
  export RABBITMQ_MNESIA_BASE="$RUN_DIR/rabbitmq/mnesia"
  export RABBITMQ_LOG_BASE="$RUN_DIR/rabbitmq/log"
  export RABBITMQ_CONFIG_FILE="$RUN_DIR/rabbitmq/rabbitmq"
  export RABBITMQ_ENABLED_PLUGINS_FILE="$RUN_DIR/rabbitmq/enabled_plugins"
  export ERL_EPMD_ADDRESS=127.0.0.1
}

# A private CA and a server certificate for localhost/127.0.0.1, made once,
# for RabbitMQ's TLS listener and PostgreSQL's TLS. (The services read them
# at start, before any test runs; tests make their own certificates with
# rcgen for everything else.)
rabbit_tls_certs() {
  local tls="$RUN_DIR/rabbitmq/tls"
  [[ -f "$tls/server.pem" ]] && return
  mkdir -p "$tls"
  (
    cd "$tls"
    umask 077
    openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 3650 \
      -subj "/CN=Kurier local RabbitMQ CA" 2>/dev/null
    openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr -subj "/CN=localhost" 2>/dev/null
    printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n' > server.ext
    openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem \
      -days 3650 -extfile server.ext 2>/dev/null
    chmod 644 ca.pem server.pem
  )
}

start_rabbitmq() {
  mkdir -p "$RUN_DIR/rabbitmq/log" "$RUN_DIR/rabbitmq/mnesia"
  rabbit_env
  if /usr/lib/rabbitmq/bin/rabbitmqctl -q -n $NODE status >/dev/null 2>&1; then
    log "RabbitMQ $NODE already running on 127.0.0.1:$AMQP_PORT"
    return
  fi
  rabbit_tls_certs
  local tls="$RUN_DIR/rabbitmq/tls"
  cat > "$RUN_DIR/rabbitmq/rabbitmq.conf" <<CONF
loopback_users = none
listeners.tcp.default = 127.0.0.1:$AMQP_PORT
listeners.ssl.default = 127.0.0.1:$AMQPS_PORT
ssl_options.cacertfile = $tls/ca.pem
ssl_options.certfile = $tls/server.pem
ssl_options.keyfile = $tls/server.key
ssl_options.verify = verify_none
ssl_options.fail_if_no_peer_cert = false
CONF
  echo '[].' > "$RUN_DIR/rabbitmq/enabled_plugins"
  log "starting RabbitMQ $NODE on 127.0.0.1:$AMQP_PORT"
  /usr/lib/rabbitmq/bin/rabbitmq-server -detached
  # The node takes a few seconds to register after -detached.
  for _ in $(seq 1 60); do
    if /usr/lib/rabbitmq/bin/rabbitmqctl -q -n $NODE await_startup --timeout 5 >/dev/null 2>&1; then
      log "RabbitMQ is up"
      # The portals' and Kurier's users and permissions (the guest user stays
      # for the tests' own connections on loopback).
      /usr/lib/rabbitmq/bin/rabbitmqctl -q -n $NODE import_definitions \
        "$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/rabbitmq/definitions.json" >/dev/null
      return
    fi
    sleep 1
  done
  log "RabbitMQ did not start; see $RUN_DIR/rabbitmq/log"
  tail -n 30 "$RUN_DIR"/rabbitmq/log/*.log >&2 || true
  exit 1
}

start_postgres() {
  local bin
  bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
  local data="$RUN_DIR/postgres"
  mkdir -p "$data"
  chown postgres:postgres "$data" 2>/dev/null || true
  chmod 700 "$data"
  pg() { if [[ $(id -u) -eq 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi; }
  if pg "$bin/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT"; then
    log "PostgreSQL already running on 127.0.0.1:$PG_PORT"
    return
  fi
  if [[ ! -f "$data/PG_VERSION" ]]; then
    pg "$bin/initdb" -D "$data" -A trust -U postgres >/dev/null
  fi
  # TLS for sslmode=verify-full, with the local CA's certificate for localhost.
  rabbit_tls_certs
  install -o postgres -g postgres -m 600 "$RUN_DIR/rabbitmq/tls/server.pem" "$data/server.crt" 2>/dev/null \
    || install -m 600 "$RUN_DIR/rabbitmq/tls/server.pem" "$data/server.crt"
  install -o postgres -g postgres -m 600 "$RUN_DIR/rabbitmq/tls/server.key" "$data/server.key" 2>/dev/null \
    || install -m 600 "$RUN_DIR/rabbitmq/tls/server.key" "$data/server.key"
  log "starting PostgreSQL on 127.0.0.1:$PG_PORT"
  pg "$bin/pg_ctl" -s -D "$data" -l "$data/server.log" -w \
    -o "-p $PG_PORT -k $data -c listen_addresses=127.0.0.1 -c max_connections=300 -c fsync=on -c ssl=on" start
}

ensure_packages
mkdir -p "$RUN_DIR"
chmod 755 "$RUN_DIR"
if [[ $WANT_RABBIT -eq 1 ]]; then start_rabbitmq; fi
if [[ $WANT_PG -eq 1 ]]; then start_postgres; fi
# The environment names this script's RabbitMQ node (stop.sh stops it): none
# to name with --postgres-only, whose caller writes its own.
[[ $WANT_RABBIT -eq 1 ]] || exit 0

cat > "$RUN_DIR/env.sh" <<ENV
export KURIER_TEST_AMQP_URL=amqp://guest:guest@127.0.0.1:$AMQP_PORT/%2f
export KURIER_TEST_AMQPS_URL=amqps://guest:guest@localhost:$AMQPS_PORT/%2f
export KURIER_TEST_AMQPS_CA=$RUN_DIR/rabbitmq/tls/ca.pem
export KURIER_TEST_TLS_CA=$RUN_DIR/rabbitmq/tls/ca.pem
export KURIER_TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:$PG_PORT/postgres
export KURIER_RABBITMQCTL="env HOME=$RUN_DIR/rabbitmq RABBITMQ_NODENAME=$NODE /usr/lib/rabbitmq/bin/rabbitmqctl -n $NODE"
export KURIER_PG_CTL="runuser -u postgres -- $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)/pg_ctl -s -D $RUN_DIR/postgres -w"
ENV
log "environment in $RUN_DIR/env.sh"
