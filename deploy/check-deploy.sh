#!/usr/bin/env bash
# Fast checks of the deployment files (deploy/local/test.sh runs this; it
# needs no registry and no cluster, only Debian packages, and takes seconds):
#   - Prometheus alert rules: promtool check rules and their unit tests;
#     every query of the Grafana dashboard parses, and rules and dashboard
#     use only the metric names Kurier exports
#   - Kubernetes manifests: strict schemas of Kubernetes 1.33 and the
#     restricted Pod Security Standard (deploy/kubernetes/check-manifests.py)
#   - systemd unit: systemd-analyze security exposure at most 2.0
#   - shell scripts under deploy/: shellcheck
# The container run is separate and slow: deploy/containers/run.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '[check-deploy] %s\n' "$*" >&2; }
as_root() { if [[ $(id -u) -eq 0 ]]; then "$@"; else sudo "$@"; fi; }
installed() { [[ $(dpkg-query -W -f='${Status}' "$1" 2>/dev/null) == "install ok installed" ]]; }

# promtool is in Debian's prometheus package; its service must not start.
missing=()
for pkg in prometheus python3 python3-yaml python3-jsonschema shellcheck systemd; do
  installed "$pkg" || missing+=("$pkg")
done
if ((${#missing[@]})); then
  log "installing ${missing[*]}"
  as_root apt-get update -qq
  printf '#!/bin/sh\nexit 101\n' | as_root tee /usr/sbin/policy-rc.d >/dev/null
  as_root chmod +x /usr/sbin/policy-rc.d
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  as_root rm -f /usr/sbin/policy-rc.d
fi
# Debian's python3 with Debian's modules, whatever python3 is first on PATH.
PY=/usr/bin/python3

log "alert rules"
promtool check rules deploy/observability/kurier.rules.yml >/dev/null
promtool test rules deploy/observability/kurier.rules.test.yml >/dev/null

log "dashboard queries and metric names"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$PY" - deploy/observability/kurier-dashboard.json deploy/observability/kurier.rules.yml "$work/dashboard.rules.yml" <<'PY'
import json, re, sys, yaml
dashboard, rules, out = sys.argv[1:]
# What Kurier exports: the table at the top of broker/src/telemetry/metrics.rs (the
# one list kept beside the code), histograms with their three series.
known = set()
for line in open("broker/src/telemetry/metrics.rs"):
    m = re.match(r"//! \| `(kurier_[a-z_]+)` \| (\w+)", line)
    if m:
        name, kind = m.groups()
        known |= {name + s for s in ("_bucket", "_count", "_sum")} if kind == "histogram" else {name}
if "kurier_build_info" not in known:
    sys.exit("no metric table found in broker/src/telemetry/metrics.rs")
exprs = [t["expr"] for p in json.load(open(dashboard))["panels"] for t in p["targets"]]
exprs += [r["expr"] for g in yaml.safe_load(open(rules))["groups"] for r in g["rules"]]
unknown = {m for e in exprs for m in re.findall(r"\bkurier_[a-z_]+", e)} - known
if unknown:
    sys.exit(f"metrics Kurier does not export: {sorted(unknown)}")
# The dashboard's queries as recording rules, so that promtool parses them.
subst = lambda e: e.replace("$__rate_interval", "5m").replace("$destination", ".*")
records = [{"record": f"dashboard:query_{i}", "expr": subst(e)} for i, e in enumerate(exprs)]
yaml.safe_dump({"groups": [{"name": "dashboard", "rules": records}]}, open(out, "w"))
PY
promtool check rules "$work/dashboard.rules.yml" >/dev/null

log "Kubernetes manifests"
"$PY" deploy/kubernetes/check-manifests.py >&2

log "systemd unit"
# --threshold counts in tenths: 20 is an exposure of 2.0.
if ! systemd-analyze security --offline=yes --threshold=20 deploy/systemd/kurier.service >"$work/systemd" 2>&1; then
  cat "$work/systemd" >&2
  log "deploy/systemd/kurier.service: exposure above 2.0"
  exit 1
fi
tail -n 1 "$work/systemd" >&2

log "shell scripts"
shellcheck deploy/check-deploy.sh deploy/containers/run.sh deploy/containers/local/*.sh deploy/compose/*.sh \
  deploy/local/test.sh deploy/local/upgrade-test.sh

log "OK"
