#!/usr/bin/env bash
# The whole test suite on a fresh Debian machine: installs and starts a private
# RabbitMQ node and PostgreSQL cluster on loopback, builds the workspace and
# runs every test (unit, golden, end to end) against the real services.
#
#   deploy/local/test.sh            # what CI runs (.ci/run)
set -euo pipefail
cd "$(dirname "$0")/../.."

if ! command -v cargo >/dev/null 2>&1; then
  echo "cargo not found: install Rust >= 1.95 with rustup (https://rustup.rs), then run this again" >&2
  exit 1
fi

bash deploy/local/services.sh --postgres
# shellcheck disable=SC1091
source "${KURIER_RUN_DIR:-/tmp/kurier-local}/env.sh"

cargo fmt --all -- --check
# The end-to-end tests run the `kurier` and `test-authority` binaries.
cargo build --locked --workspace --bins
cargo test --locked --workspace
