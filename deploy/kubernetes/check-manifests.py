#!/usr/bin/env python3
"""Check Kurier's Kubernetes manifests without a cluster or a registry
(deploy/check-deploy.sh runs it in CI; Debian: python3-yaml, python3-jsonschema).

1. Every object of a built-in kind is valid against the Kubernetes JSON
   Schemas of kubernetes-validate in strict mode (unknown fields refused),
   kept in schema/k8s-strict.json (schema/update.py makes it).
2. Objects of another kind must be one of the operators' kinds used here
   (RabbitmqCluster, CloudNativePG Cluster, ServiceMonitor, Kustomization);
   their fields are not validated (no schemas for them here).
3. Every pod template meets the "restricted" Pod Security Standard
   (https://kubernetes.io/docs/concepts/security/pod-security-standards/),
   and what Kurier needs: a read-only root, fsGroup so that the Secret's
   files are readable, probes on the port of [admin] probe_listen.

    deploy/kubernetes/check-manifests.py [FILE.yaml...]   # default: deploy/kubernetes/*.yaml
Exit 1 with one line per finding."""
import json
import sys
import tomllib
from pathlib import Path

import jsonschema
import yaml

HERE = Path(__file__).resolve().parent
OPERATOR_KINDS = {
    ("rabbitmq.com/v1beta1", "RabbitmqCluster"),
    ("postgresql.cnpg.io/v1", "Cluster"),
    ("monitoring.coreos.com/v1", "ServiceMonitor"),
    ("kustomize.config.k8s.io/v1beta1", "Kustomization"),
}
# Volume types the restricted profile allows.
VOLUME_TYPES = {"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral",
                "persistentVolumeClaim", "projected", "secret"}

findings = []


def finding(where, text):
    findings.append(f"{where}: {text}")


def schema_validators():
    bundle = json.loads((HERE / "schema" / "k8s-strict.json").read_text())
    definitions = bundle["definitions"]
    validators = {}
    for key, schema in bundle["kinds"].items():
        resolver = jsonschema.RefResolver.from_schema(schema, store={definitions["$id"]: definitions})
        validators[key] = jsonschema.Draft202012Validator(schema, resolver=resolver)
    return bundle["kubernetes"], validators


def check_schema(where, obj, validators):
    key = f"{obj.get('apiVersion')} {obj.get('kind')}"
    if key in validators:
        for error in sorted(validators[key].iter_errors(obj), key=lambda e: list(e.absolute_path)):
            path = "/".join(str(p) for p in error.absolute_path) or "(top)"
            finding(where, f"{path}: {error.message}")
    elif (obj.get("apiVersion"), obj.get("kind")) not in OPERATOR_KINDS:
        finding(where, f"kind {key} is neither a built-in kind with a schema here nor a known operator's kind")


def check_pod(where, spec, probe_port):
    sc = spec.get("securityContext") or {}
    for flag in ("hostNetwork", "hostPID", "hostIPC"):
        if spec.get(flag):
            finding(where, f"{flag} is not allowed (restricted)")
    if "fsGroup" not in sc:
        finding(where, "securityContext.fsGroup is missing: the Secret's files would be unreadable for the non-root user")
    for volume in spec.get("volumes") or []:
        kinds = set(volume) - {"name"}
        if not kinds <= VOLUME_TYPES:
            finding(where, f"volume {volume['name']}: type {sorted(kinds)} is not allowed (restricted)")
        mode = (volume.get("secret") or {}).get("defaultMode")
        if mode is not None and mode & 0o004:
            finding(where, f"volume {volume['name']}: defaultMode {mode:o} lets others read the secrets (Kurier refuses them)")
    for c in (spec.get("initContainers") or []) + (spec.get("containers") or []):
        cw = f"{where} container {c['name']}"
        csc = c.get("securityContext") or {}

        def effective(field):
            return csc.get(field, sc.get(field))

        if effective("runAsNonRoot") is not True:
            finding(cw, "runAsNonRoot must be true (restricted)")
        if effective("runAsUser") == 0:
            finding(cw, "runAsUser 0 is not allowed (restricted)")
        if (effective("seccompProfile") or {}).get("type") not in ("RuntimeDefault", "Localhost"):
            finding(cw, "seccompProfile must be RuntimeDefault or Localhost (restricted)")
        if csc.get("allowPrivilegeEscalation") is not False:
            finding(cw, "allowPrivilegeEscalation must be false (restricted)")
        if csc.get("privileged"):
            finding(cw, "privileged is not allowed")
        caps = csc.get("capabilities") or {}
        if "ALL" not in (caps.get("drop") or []):
            finding(cw, "capabilities must drop ALL (restricted)")
        if set(caps.get("add") or []) - {"NET_BIND_SERVICE"}:
            finding(cw, f"capabilities.add {caps['add']} is not allowed (restricted)")
        if csc.get("readOnlyRootFilesystem") is not True:
            finding(cw, "readOnlyRootFilesystem must be true (writable paths: an emptyDir)")
        for port in c.get("ports") or []:
            if "hostPort" in port:
                finding(cw, "hostPort is not allowed")
        ports = {p.get("name"): p["containerPort"] for p in c.get("ports") or []}
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            get = (c.get(probe) or {}).get("httpGet")
            if not get:
                finding(cw, f"{probe} with httpGet is missing")
                continue
            port = ports.get(get["port"], get["port"])
            if probe_port is not None and port != probe_port:
                finding(cw, f"{probe} goes to port {port}, but [admin] probe_listen is on {probe_port}")


def probe_port_of(objects):
    """The port of [admin] probe_listen in the kurier.toml of a Secret or ConfigMap."""
    for obj in objects:
        data = obj.get("stringData") or obj.get("data") or {}
        if obj.get("kind") in ("Secret", "ConfigMap") and "kurier.toml" in data:
            admin = tomllib.loads(data["kurier.toml"]).get("admin", {})
            listen = admin.get("probe_listen")
            if not listen or listen.startswith("127.") or listen.startswith("localhost"):
                finding("kurier.toml", f"[admin] probe_listen = {listen!r}: the kubelet and Prometheus cannot reach it")
                return None
            return int(listen.rsplit(":", 1)[1])
    return None


def main(files):
    version, validators = schema_validators()
    objects = []
    for f in files:
        for n, obj in enumerate(yaml.safe_load_all(Path(f).read_text())):
            if obj:
                objects.append((f"{Path(f).name}#{n + 1} {obj.get('kind')}/{(obj.get('metadata') or {}).get('name')}", obj))
    probe_port = probe_port_of([o for _, o in objects])
    kinds = set()
    for where, obj in objects:
        kinds.add(obj.get("kind"))
        check_schema(where, obj, validators)
        template = ((obj.get("spec") or {}).get("template") or {}).get("spec")
        if template is not None:
            check_pod(where, template, probe_port)
    for needed in ("Deployment", "Secret", "Service", "PodDisruptionBudget", "NetworkPolicy",
                   "RabbitmqCluster", "Cluster"):
        if needed not in kinds:
            finding("manifests", f"no {needed}")
    for line in findings:
        print(line)
    print(f"{len(objects)} objects checked (Kubernetes {version} schemas, strict; restricted Pod Security Standard): "
          f"{'OK' if not findings else str(len(findings)) + ' findings'}")
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:] or sorted(str(p) for p in HERE.glob("*.yaml"))))
