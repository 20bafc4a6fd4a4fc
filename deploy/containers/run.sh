#!/usr/bin/env bash
# Build Kurier's image and run deploy/compose/compose.yaml with podman, then
# check that the sample submissions were delivered: each one has a receipt
# `delivered` in the shared database, and the test authority accepted each
# one exactly once.
#
#   deploy/containers/run.sh              # build, run, check, take it all down again
#   KURIER_KEEP=1 deploy/containers/run.sh   # leave it running (stop: see the end)
#
# Made for a machine without an image registry (and run as root, for
# debootstrap and rootful podman):
# - The base image is Debian bookworm made here with debootstrap and
#   `podman import` (localhost/kurier-base:bookworm); RabbitMQ and PostgreSQL
#   images are Debian's packages on it (deploy/containers/local/), standing in
#   for the official images that compose.yaml names by default.
# - Kurier and the test authority are NOT compiled in the container (that
#   needs the rust image from a registry, and takes long on a small machine):
#   they are built on this machine with cargo (Debian bookworm, the same
#   libxml2 as the image) and copied into the runtime stage
#   (Dockerfile BINARIES=prebuilt). KURIER_PREBUILT_DIR=DIR takes `kurier`
#   and `test-authority` from DIR instead of running cargo.
# - podman runs with --runtime runc (crun refuses hybrid cgroups), and
#   /etc/containers/containers.conf must say `default_ulimits = []` where
#   rlimits cannot be raised. podman-compose 1.0 does not wait for
#   healthchecks (and podman runs them only with systemd timers): this script
#   starts the services in order and runs each healthcheck itself.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$(pwd)
PROJECT=${KURIER_COMPOSE_PROJECT:-kurier}
BASE_IMAGE=localhost/kurier-base:bookworm
export KURIER_IMAGE=localhost/kurier:local
export TEST_AUTHORITY_IMAGE=localhost/kurier-test-authority:local
export RABBITMQ_IMAGE=localhost/kurier-local/rabbitmq:bookworm
export POSTGRES_IMAGE=localhost/kurier-local/postgres:bookworm
SAMPLES=(hzl-minimal hzl-full wbs-full buergergeld-wba)

log() { printf '[containers] %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }
installed() { [[ $(dpkg-query -W -f='${Status}' "$1" 2>/dev/null) == "install ok installed" ]]; }

[[ $(id -u) -eq 0 ]] || die "run as root (debootstrap and rootful podman)"
missing=()
for pkg in podman podman-compose runc debootstrap; do installed "$pkg" || missing+=("$pkg"); done
if ((${#missing[@]})); then
  log "installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
if ! grep -qs '^ *default_ulimits *= *\[ *\]' /etc/containers/containers.conf; then
  die "podman would set rlimits this machine may refuse: add 'default_ulimits = []' under [containers] in /etc/containers/containers.conf"
fi

podman() { command podman --runtime runc "$@"; }
compose() {
  podman-compose --podman-args="--runtime runc" -p "$PROJECT" -f deploy/compose/compose.yaml "$@"
}
container() { echo "${PROJECT}_$1_1"; }

# 1. The base image.
if ! podman image exists "$BASE_IMAGE"; then
  log "making $BASE_IMAGE with debootstrap"
  rootfs=$(mktemp -d)
  debootstrap --variant=minbase bookworm "$rootfs" http://deb.debian.org/debian >/dev/null
  tar -C "$rootfs" -c . | podman import --change 'CMD ["/bin/bash"]' - "$BASE_IMAGE" >/dev/null
  rm -rf "$rootfs"
fi

# 2. The binaries, built on this machine.
if [[ -n ${KURIER_PREBUILT_DIR:-} ]]; then
  bin=$KURIER_PREBUILT_DIR
else
  log "building kurier and test-authority (release)"
  cargo build --locked --release -p kurier -p kurier-e2e --bin kurier --bin test-authority
  bin=${CARGO_TARGET_DIR:-$ROOT/target}/release
fi
[[ -x $bin/kurier && -x $bin/test-authority ]] || die "no kurier and test-authority in $bin"

# 3. The images. The context holds the two binaries only.
context=$(mktemp -d)
trap 'rm -rf "$context"' EXIT
mkdir -p "$context/deploy/containers/prebuilt"
cp "$bin/kurier" "$bin/test-authority" "$context/deploy/containers/prebuilt/"
for target in kurier test-authority; do
  tag=$KURIER_IMAGE
  [[ $target == test-authority ]] && tag=$TEST_AUTHORITY_IMAGE
  log "building $tag"
  podman build -q -f deploy/containers/Dockerfile --target "$target" \
    --build-arg RUNTIME_IMAGE="$BASE_IMAGE" --build-arg BINARIES=prebuilt -t "$tag" "$context" >/dev/null
done
for name in rabbitmq postgres; do
  tag=localhost/kurier-local/$name:bookworm
  if ! podman image exists "$tag"; then
    log "building $tag"
    podman build -q -f "deploy/containers/local/$name.Dockerfile" --build-arg BASE_IMAGE="$BASE_IMAGE" \
      -t "$tag" deploy/containers/local >/dev/null
  fi
done

# 4. The services, in the order of their depends_on, each healthy before the next.
healthy() {
  local name=$1 tries=${2:-60}
  for _ in $(seq 1 "$tries"); do
    if podman healthcheck run "$(container "$name")" >/dev/null 2>&1; then
      log "$name is healthy"
      return 0
    fi
    sleep 2
  done
  podman logs --tail 30 "$(container "$name")" >&2 || true
  die "$name did not become healthy"
}
exited_ok() {
  local name=$1
  for _ in $(seq 1 60); do
    case $(podman inspect -f '{{.State.Status}} {{.State.ExitCode}}' "$(container "$name")" 2>/dev/null) in
      "exited 0") log "$name finished"; return 0 ;;
      exited\ *) podman logs "$(container "$name")" >&2; die "$name failed" ;;
    esac
    sleep 1
  done
  die "$name did not finish"
}

compose down -v >/dev/null 2>&1 || true
log "starting RabbitMQ, PostgreSQL and the setup job"
compose up -d --no-build rabbitmq postgres setup >/dev/null 2>&1
exited_ok setup
healthy postgres
healthy rabbitmq
compose up -d --no-build authority >/dev/null 2>&1
healthy authority
log "starting two Kurier instances"
compose up -d --no-build kurier-1 kurier-2 >/dev/null 2>&1
healthy kurier-1
healthy kurier-2
log "the portal publishes the samples"
compose up -d --no-build portal >/dev/null 2>&1
exited_ok portal

# 5. Delivered? Every sample's receipt says so, and the authority accepted
# each sample once (its /stats counts acceptances per Idempotency-Key).
ids=()
for sample in "${SAMPLES[@]}"; do
  ids+=("$(grep -o '"submission_id": *"[^"]*"' "tests/samples/$sample.json" | cut -d'"' -f4)")
done
delivered=0
for _ in $(seq 1 60); do
  delivered=0
  for id in "${ids[@]}"; do
    if podman exec "$(container kurier-1)" kurier receipts show "$id" --json 2>/dev/null \
      | grep -q '"status": *"delivered"'; then
      delivered=$((delivered + 1))
    fi
  done
  ((delivered == ${#ids[@]})) && break
  sleep 2
done
podman exec "$(container kurier-1)" kurier receipts list >&2 || true
stats=$(podman exec "$(container authority)" bash -c \
  "exec 3<>/dev/tcp/127.0.0.1/8444 && printf 'GET /stats HTTP/1.1\r\nHost: authority\r\nConnection: close\r\n\r\n' >&3 && cat <&3" | tr -d '\r')
accepted=0
for id in "${ids[@]}"; do
  grep -Eq "\"$id\" *: *\{[^}]*\"created\" *: *1[,}]|\"$id\" *: *1[,}]" <<<"$stats" && accepted=$((accepted + 1))
done
consumers=$(for n in 1 2; do podman logs "$(container "kurier-$n")" 2>&1 | grep -c '"delivered"' || true; done | paste -sd/)
log "receipts delivered: $delivered of ${#ids[@]}; accepted once by the authority: $accepted of ${#ids[@]}; delivery log lines per instance: $consumers"

if [[ -z ${KURIER_KEEP:-} ]]; then
  compose down -v >/dev/null 2>&1 || true
else
  log "left running; stop: podman-compose --podman-args='--runtime runc' -p $PROJECT -f deploy/compose/compose.yaml down -v"
fi
if ((delivered == ${#ids[@]} && accepted == ${#ids[@]})); then
  log "PASS: the samples were delivered"
else
  die "FAIL: not every sample was delivered"
fi
