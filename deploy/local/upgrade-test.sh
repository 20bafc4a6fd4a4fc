#!/usr/bin/env bash
# The previous release against the new schema (docs/OPERATIONS.md, Upgrades):
# builds the `kurier` binary of the commit in deploy/previous-release (with
# deploy/previous-release.patch, if there is one) and runs
# tests/tests/upgrade.rs, which migrates a database with this tree's binary
# while the previous one runs, restarts the previous one on it (a rollback)
# and delivers through both, on SQLite and PostgreSQL.
#
#   deploy/local/upgrade-test.sh     # run by deploy/local/test.sh, after the suite
#
# Needs the services of deploy/local/services.sh --postgres (env.sh sourced)
# and the git history that holds the previous release: a shallow clone fails
# here, saying so (`git fetch --unshallow`). The previous release is built in
# the same CARGO_TARGET_DIR, so the dependencies it shares are not built again.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/target}"
started=$SECONDS

commit=$(grep -v '^#' deploy/previous-release | grep -m1 -E '^[0-9a-f]{40}$' || true)
if [[ -z $commit ]]; then
  echo "[upgrade] deploy/previous-release names no commit (40 hex digits)" >&2
  exit 1
fi
if ! git cat-file -e "$commit^{commit}" 2>/dev/null; then
  if [[ ${KURIER_UPGRADE_NEEDS_HISTORY:-1} == 0 ]]; then
    # test.sh on a checkout without history (a shallow CI clone, an
    # exported tree): say so loudly, the rest of the suite decides.
    echo "[upgrade] SKIPPED: commit $commit (deploy/previous-release) is not in this checkout's history;" >&2
    echo "[upgrade] run deploy/local/upgrade-test.sh in a full clone to test the upgrade." >&2
    exit 0
  fi
  echo "[upgrade] FAILED: commit $commit (deploy/previous-release) is not in this clone's history," >&2
  echo "[upgrade] so the previous release cannot be built and the upgrade test cannot run." >&2
  echo "[upgrade] A shallow clone? Fetch the history: git fetch --unshallow (or clone with full depth)." >&2
  exit 1
fi

# The previous release's sources, extracted again when the commit or the
# patch changes. Always at the same path: cargo remembers the source files of
# what it built by their path inside the target directory, so a second copy
# elsewhere would pass for built already.
patch=deploy/previous-release.patch
stamp=$commit
[[ -f $patch ]] && stamp="$commit-$(git hash-object "$patch" | cut -c1-12)"
src="$CARGO_TARGET_DIR/previous-release/src"
bin="$CARGO_TARGET_DIR/previous-release/kurier"
if [[ $(cat "$src/.stamp" 2>/dev/null) != "$stamp" ]]; then
  rm -rf "$src" "$bin"
  mkdir -p "$src"
  git archive "$commit" | tar -x -C "$src"
  if [[ -f $patch ]]; then
    echo "[upgrade] applying $patch to $commit:"
    sed -n '1,/^---/p' "$patch" | sed '$d' | sed 's/^/[upgrade]   /'
    # A repository of its own, so that git apply patches this tree and not
    # the one around it (CARGO_TARGET_DIR is often inside the checkout).
    git -C "$src" init -q
    git -C "$src" apply "$root/$patch"
  fi
  # git archive dates the files at the commit, older than what an earlier
  # extraction built: new dates make cargo build them again.
  find "$src" -type f -exec touch {} +
  echo "$stamp" >"$src/.stamp"
fi

echo "[upgrade] building kurier of the previous release $commit"
build_started=$SECONDS
# Same CARGO_TARGET_DIR, and features resolved over the whole workspace as
# test.sh's build does, so the dependencies are reused (`-p kurier` would
# build most of them again); only the kurier binary and what it needs are
# compiled. Cargo names a workspace crate's artifacts by its path inside the
# workspace, not where the workspace is: the profile override gives the
# previous release's crates names of their own, so the two trees never take
# each other's artifacts (with the same dependencies they would). The binary
# lands in target/debug/, where this tree's goes too: copy it away, then
# link this tree's back (cargo relinks fresh units).
apart=()
for crate in kurier kurier-adapters; do
  apart+=(--config "profile.dev.package.$crate.codegen-units=255")
done
cargo build --locked --manifest-path "$src/Cargo.toml" "${apart[@]}" --workspace --bin kurier
cp "$CARGO_TARGET_DIR/debug/kurier" "$bin.tmp"
mv "$bin.tmp" "$bin"
cargo build --locked --workspace --bins
echo "[upgrade] previous release built in $((SECONDS - build_started)) s: $bin"

KURIER_PREVIOUS_BIN=$bin KURIER_PREVIOUS_COMMIT=$commit \
  cargo test --locked -p kurier-e2e --test upgrade -- --include-ignored
echo "[upgrade] done in $((SECONDS - started)) s"
