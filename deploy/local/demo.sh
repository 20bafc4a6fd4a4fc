#!/usr/bin/env bash
# The main job on a fresh Debian machine: a local RabbitMQ and an mTLS test
# authority on loopback, Kurier with SQLite, and the sample submissions flowing
# end to end. Leaves everything running; deploy/local/stop.sh stops it.
#
#   deploy/local/demo.sh                     # debug build
#   KURIER_PROFILE=release deploy/local/demo.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$(pwd)
RUN_DIR=${KURIER_RUN_DIR:-/tmp/kurier-local}
PROFILE=${KURIER_PROFILE:-debug}
DEMO="$RUN_DIR/demo"

if ! command -v cargo >/dev/null 2>&1; then
  echo "cargo not found: install Rust >= 1.95 with rustup (https://rustup.rs), then run this again" >&2
  exit 1
fi

bash deploy/local/services.sh
if [[ $PROFILE == release ]]; then
  cargo build --locked --release --workspace --bins
else
  cargo build --locked --workspace --bins
fi
BIN="$ROOT/target/$PROFILE"
mkdir -p "$DEMO"

# Local PKI: the authority's CA and server certificate, Kurier's client certificate.
[[ -f "$DEMO/certs/kurier.pem" ]] || "$BIN/gen-certs" "$DEMO/certs"

# An operator token with every role for the admin API and the console
# (name:roles:token; the file must not be readable by others: umask 077).
if [[ ! -f "$DEMO/admin.tokens" ]] || ! grep -q '^demo:read,' "$DEMO/admin.tokens"; then
  (umask 077; echo "demo:read,operate,view_payload:$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')" > "$DEMO/admin.tokens")
fi
chmod 600 "$DEMO/admin.tokens"

# Stop an earlier demo's processes.
for name in kurier authority; do
  if [[ -f "$RUN_DIR/$name.pid" ]]; then kill "$(cat "$RUN_DIR/$name.pid")" 2>/dev/null || true; fi
done
sleep 1

"$BIN/test-authority" --listen 127.0.0.1:8443 --control 127.0.0.1:8444 \
  --cert "$DEMO/certs/authority.pem" --key "$DEMO/certs/authority.key" \
  --client-ca "$DEMO/certs/kurier-ca.pem" --inbox "$DEMO/inbox" \
  > "$DEMO/authority.out" 2> "$DEMO/authority.log" &
echo $! > "$RUN_DIR/authority.pid"

sed "s|@DEMO@|$DEMO|g" deploy/local/kurier.local.toml > "$DEMO/kurier.toml"
export KURIER_CONFIG="$DEMO/kurier.toml"
"$BIN/kurier" check-config
"$BIN/kurier" run > "$DEMO/kurier.log" 2>&1 &
echo $! > "$RUN_DIR/kurier.pid"

"$BIN/kurier" submit tests/samples/*.json

echo "waiting for receipts…"
for _ in $(seq 1 60); do
  n=$("$BIN/kurier" receipts list --json | grep -c '"submission_id"' || true)
  [[ $n -ge 4 ]] && break
  sleep 1
done
"$BIN/kurier" receipts list
echo
"$BIN/kurier" dead-letters list
cat <<INFO

Kurier is running (log $DEMO/kurier.log), the test authority has written what
it accepted to $DEMO/inbox/. Try:
  export KURIER_CONFIG=$DEMO/kurier.toml
  $BIN/kurier receipts show 3f0b6c1e-8a4d-4c1e-9f57-1d2a7b9e0c11
  $BIN/kurier-load --count 2000          # throughput and latency
  console: http://127.0.0.1:9090/  (token: $(cut -d: -f3 "$DEMO/admin.tokens"))
  deploy/local/stop.sh                   # stop everything
INFO
