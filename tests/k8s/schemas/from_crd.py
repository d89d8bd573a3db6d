"""Turn a CustomResourceDefinition's v1 schema into a strict JSON schema for tests/k8s.

kubernetes-validate has no schemas for CRDs (Gateway API, Prometheus Operator, cert-manager), so
the tests validate their objects (manifests.CRD_SCHEMAS) against the upstream CRDs' own
openAPIV3Schema, made strict (unknown fields refused) the way kubernetes-validate's -strict
schemas are. CEL rules (x-kubernetes-validations) are not
checked; tests/k8s/test_gateway.py checks the structure that matters to us.

usage: python tests/k8s/schemas/from_crd.py CRD.yaml SOURCE > tests/k8s/schemas/KIND.json
  (SOURCE says where the CRD came from, e.g. "kubernetes-sigs/gateway-api v1.6.1 <commit> <path>")
"""

import json
import sys
from pathlib import Path

import yaml

DROP = {"description", "default"}
METADATA = {
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "namespace": {"type": "string"},
        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
        "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
    },
    "required": ["name"],
    "additionalProperties": False,
}


def strict(node):
    """The schema without descriptions and Kubernetes extensions, refusing unknown properties."""
    if isinstance(node, list):
        return [strict(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {}
    for key, value in node.items():
        if key in DROP or key.startswith("x-kubernetes-"):
            continue
        if key == "properties":
            out[key] = {name: strict(sub) for name, sub in value.items()}
        else:
            out[key] = strict(value)
    if node.get("nullable"):
        out.pop("nullable")
        out["type"] = [out["type"], "null"]
    open_object = node.get("x-kubernetes-preserve-unknown-fields") or "additionalProperties" in node
    if "properties" in node and not open_object:
        out["additionalProperties"] = False
    return out


def main(crd_path, source):
    crd = yaml.safe_load(Path(crd_path).read_text())
    version = next(v for v in crd["spec"]["versions"] if v["name"] == "v1")
    schema = strict(version["schema"]["openAPIV3Schema"])
    group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
    schema["properties"]["apiVersion"] = {"enum": [f"{group}/v1"]}
    schema["properties"]["kind"] = {"enum": [kind]}
    schema["properties"]["metadata"] = METADATA
    schema["properties"].pop("status", None)  # never written by us
    schema["required"] = ["apiVersion", "kind", "metadata", "spec"]
    schema = {"$comment": f"strict v1 schema of {kind} from {source}", **schema}
    json.dump(schema, sys.stdout, indent=1, sort_keys=True)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main(*sys.argv[1:3])
