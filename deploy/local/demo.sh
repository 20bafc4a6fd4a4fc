#!/usr/bin/env bash
# The main job on a fresh Debian machine: a local RabbitMQ and an mTLS test
# authority on loopback (and an XTA 2 server and a FIT-Connect Submission API
# double, one destination over each transport), Kurier with
# SQLite, and the sample submissions flowing end to end. Leaves everything
# running; deploy/local/stop.sh stops it.
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
for name in kurier authority xta2-authority fit-authority; do
  if [[ -f "$RUN_DIR/$name.pid" ]]; then kill "$(cat "$RUN_DIR/$name.pid")" 2>/dev/null || true; fi
done
sleep 1

"$BIN/test-authority" --listen 127.0.0.1:8443 --control 127.0.0.1:8444 \
  --cert "$DEMO/certs/authority.pem" --key "$DEMO/certs/authority.key" \
  --client-ca "$DEMO/certs/kurier-ca.pem" --inbox "$DEMO/inbox" \
  > "$DEMO/authority.out" 2> "$DEMO/authority.log" &
echo $! > "$RUN_DIR/authority.pid"

# The XTA 2 destination's server: validates every SOAP message against the
# XTA-WS 2.1.1 schemas, requires the client certificate.
"$BIN/xta2-authority" --listen 127.0.0.1:8447 --control 127.0.0.1:8448 \
  --cert "$DEMO/certs/authority.pem" --key "$DEMO/certs/authority.key" \
  --client-ca "$DEMO/certs/kurier-ca.pem" \
  > "$DEMO/xta2-authority.out" 2> "$DEMO/xta2-authority.log" &
echo $! > "$RUN_DIR/xta2-authority.pid"

# The FIT-Connect destination's Submission API (and token endpoint): a double
# that decrypts with the destination's key and checks every hash.
[[ -f "$DEMO/fit-client.secret" ]] || (umask 077; head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$DEMO/fit-client.secret")
"$BIN/fit-connect-authority" --listen 127.0.0.1:8445 --control 127.0.0.1:8446 \
  --cert "$DEMO/certs/authority.pem" --key "$DEMO/certs/authority.key" \
  --client-id kurier-demo --client-secret-file "$DEMO/fit-client.secret" \
  --destination-id 5a0f0b8e-3c1d-4e55-9a53-6a2f7c0d1e01 \
  --service urn:de:fim:leika:leistung:99050012104001 --key-ca-out "$DEMO/fit-key-ca.pem" \
  > "$DEMO/fit-authority.out" 2> "$DEMO/fit-authority.log" &
echo $! > "$RUN_DIR/fit-authority.pid"
for _ in $(seq 1 120); do [[ -s "$DEMO/fit-authority.out" ]] && break; sleep 0.5; done

sed "s|@DEMO@|$DEMO|g" deploy/local/kurier.local.toml > "$DEMO/kurier.toml"
export KURIER_CONFIG="$DEMO/kurier.toml"
"$BIN/kurier" check-config
"$BIN/kurier" run > "$DEMO/kurier.log" 2>&1 &
echo $! > "$RUN_DIR/kurier.pid"

"$BIN/kurier" submit tests/samples/*.json
# One more Bürgergeld application, to the Jobcenter's FIT-Connect destination.
sed -e 's/"destination": "jobcenter-kreis-offenbach"/"destination": "jobcenter-kreis-offenbach-fit"/' \
  -e 's/"submission_id": "[^"]*"/"submission_id": "6c2f0e4a-9b1d-4e7a-8c53-2d9f1a0b7e64"/' \
  tests/samples/buergergeld-wba.json > "$DEMO/buergergeld-fit.json"
"$BIN/kurier" submit "$DEMO/buergergeld-fit.json"
# And one HzL application to the Sozialamt's XTA 2 destination.
sed -e 's/"destination": "sozialamt-koeln"/"destination": "sozialamt-koeln-xta"/' \
  -e 's/"submission_id": "[^"]*"/"submission_id": "8d4e2b1c-7f3a-4c9e-b2d1-5e6f7a8b9c0d"/' \
  tests/samples/hzl-minimal.json > "$DEMO/hzl-xta.json"
"$BIN/kurier" submit "$DEMO/hzl-xta.json"

echo "waiting for receipts…"
for _ in $(seq 1 60); do
  n=$("$BIN/kurier" receipts list --json | grep -c '"submission_id"' || true)
  [[ $n -ge 6 ]] && break
  sleep 1
done
"$BIN/kurier" receipts list
echo
"$BIN/kurier" dead-letters list
cat <<INFO

Kurier is running (log $DEMO/kurier.log), the test authority has written what
it accepted to $DEMO/inbox/; the XTA 2 server lists its messages
(curl -s http://127.0.0.1:8448/messages), the FIT-Connect double counts what
it decrypted (curl -s http://127.0.0.1:8446/stats). Try:
  export KURIER_CONFIG=$DEMO/kurier.toml
  $BIN/kurier receipts show 3f0b6c1e-8a4d-4c1e-9f57-1d2a7b9e0c11
  $BIN/kurier-load --count 2000          # throughput and latency
  console: http://127.0.0.1:9090/  (token: $(cut -d: -f3 "$DEMO/admin.tokens"))
  deploy/local/stop.sh                   # stop everything
INFO
