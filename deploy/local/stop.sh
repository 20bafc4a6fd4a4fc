#!/usr/bin/env bash
# Stop what demo.sh and services.sh started (Kurier, the test authorities,
# RabbitMQ, PostgreSQL). Data under $KURIER_RUN_DIR stays; delete it to start over.
set -uo pipefail
RUN_DIR=${KURIER_RUN_DIR:-/tmp/kurier-local}
for name in kurier authority xta2-authority fit-authority; do
  if [[ -f "$RUN_DIR/$name.pid" ]]; then
    kill "$(cat "$RUN_DIR/$name.pid")" 2>/dev/null && echo "stopped $name"
    rm -f "$RUN_DIR/$name.pid"
  fi
done
if [[ -f "$RUN_DIR/env.sh" ]]; then
  # shellcheck disable=SC1091
  source "$RUN_DIR/env.sh"
  $KURIER_RABBITMQCTL -q stop >/dev/null 2>&1 && echo "stopped RabbitMQ"
fi
if [[ -f "$RUN_DIR/postgres/postmaster.pid" ]]; then
  bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
  runuser -u postgres -- "$bin/pg_ctl" -s -D "$RUN_DIR/postgres" stop -m fast && echo "stopped PostgreSQL"
fi
