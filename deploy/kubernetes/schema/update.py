#!/usr/bin/env python3
"""Regenerate k8s-strict.json, the JSON Schemas that check-manifests.py
validates Kurier's manifests against, from a kubernetes-validate wheel
(PyPI; the same schemas that tool uses, strict: unknown fields refused).

    pip download --no-deps kubernetes-validate -d /tmp/kv
    deploy/kubernetes/schema/update.py /tmp/kv/kubernetes_validate-*.whl 1.33

Keeps only the kinds the manifests use and the definitions they reach, and
drops the descriptions, so that the file is small enough to keep in the
repository and CI needs no registry."""
import json
import sys
import zipfile
from pathlib import Path

# (apiVersion, kind) -> file name in kubernetes-validate's schema directory.
KINDS = {
    ("v1", "ServiceAccount"): "serviceaccount-v1",
    ("v1", "Secret"): "secret-v1",
    ("v1", "Service"): "service-v1",
    ("v1", "ConfigMap"): "configmap-v1",
    ("apps/v1", "Deployment"): "deployment-apps-v1",
    ("policy/v1", "PodDisruptionBudget"): "poddisruptionbudget-policy-v1",
    ("networking.k8s.io/v1", "NetworkPolicy"): "networkpolicy-networking-v1",
}


def strip(node):
    if isinstance(node, dict):
        return {k: strip(v) for k, v in node.items() if k != "description"}
    if isinstance(node, list):
        return [strip(v) for v in node]
    return node


def main(wheel, version):
    base = f"kubernetes_validate/kubernetes-json-schema/v{version}.0-local-strict/"
    with zipfile.ZipFile(wheel) as z:
        defs = json.loads(z.read(base + "_definitions.json"))
        roots = {f"{a} {k}": json.loads(z.read(base + f + ".json")) for (a, k), f in KINDS.items()}
    reached = set()

    def walk(node):
        if isinstance(node, dict):
            ref = node.get("$ref", "")
            name = ref.rsplit("/", 1)[-1]
            if "/$defs/" in ref and name not in reached:
                reached.add(name)
                walk(defs["$defs"][name])
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(roots)
    bundle = {
        "kubernetes": version,
        "source": "kubernetes-validate " + Path(wheel).name + ", " + base,
        "kinds": strip(roots),
        "definitions": {"$schema": defs["$schema"], "$id": defs["$id"],
                        "$defs": {k: strip(defs["$defs"][k]) for k in sorted(reached)}},
    }
    out = Path(__file__).with_name("k8s-strict.json")
    out.write_text(json.dumps(bundle, sort_keys=True, separators=(",", ":")) + "\n")
    print(f"{out}: {len(KINDS)} kinds, {len(reached)} definitions, {out.stat().st_size} bytes")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
