"""Every kustomization renders, and every object passes strict schema validation offline."""

import json
import subprocess
import sys
from pathlib import Path

import jsonschema
import kubernetes_validate
import pytest

from tests.k8s import manifests

# The oldest Kubernetes we support, one in between, and the newest kubernetes-validate knows.
VERSIONS = ("1.32.0", "1.34.0", kubernetes_validate.latest_version())
RENDERS = ("base", "staging", "production", "production-loadbalancer")
# Gateway API kinds are CRDs, absent from kubernetes-validate's built-in schemas: they are
# validated below against the upstream CRDs' own schemas (tests/k8s/schemas), made strict.
GATEWAY_API = "gateway.networking.k8s.io/"
SCHEMAS = Path(__file__).parent / "schemas"


def test_kubectl_has_kustomize_v5():
    """The kubectl used here embeds kustomize v5 (components, labels, the syntax we use)."""
    out = subprocess.run(
        [manifests.kubectl(), "version", "--client", "-o", "json"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert json.loads(out)["kustomizeVersion"].startswith("v5."), out


@pytest.mark.parametrize("render", RENDERS)
def test_renders_the_whole_stack(rendered, render):
    """Each kustomization renders every compose component plus the namespace."""
    names = {d["metadata"]["name"] for d in manifests.workloads(rendered[render])}
    assert names == {"nginx", "web", "ws", "migrate", "redis", "postgres"}
    assert len(manifests.find(rendered[render], "Namespace")) == 1


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("render", RENDERS)
def test_strict_schema(rendered, render, version):
    """Every object is valid for this Kubernetes version, unknown fields refused."""
    errors = []
    for doc in rendered[render]:
        if doc["apiVersion"].startswith(GATEWAY_API):
            continue  # test_gateway_api_schema
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as e:
            path = "/".join(map(str, e.path))
            errors.append(f"{doc['kind']}/{doc['metadata']['name']}: {path}: {e.message}")
    assert not errors, "\n".join(errors)


def test_strict_validation_refuses_unknown_fields(rendered):
    """A misspelt field fails strict validation in every version (no vacuous pass)."""
    web = manifests.one(rendered["production"], "Deployment", "web")
    broken = json.loads(json.dumps(web))
    broken["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}
    for version in VERSIONS:
        with pytest.raises(kubernetes_validate.ValidationError, match="readinesProbe"):
            kubernetes_validate.validate(broken, version, strict=True)


@pytest.mark.parametrize("render", ["staging", "production"])
def test_gateway_api_schema(rendered, render):
    """Gateway and HTTPRoute pass the strict schema of Gateway API v1.6.1's own CRDs."""
    kinds = {"Gateway": "gateway.json", "HTTPRoute": "httproute.json"}
    found = [d for d in rendered[render] if d["apiVersion"].startswith(GATEWAY_API)]
    assert {d["kind"] for d in found} == set(kinds)
    for doc in found:
        schema = json.loads((SCHEMAS / kinds[doc["kind"]]).read_text())
        errors = [
            f"{'/'.join(map(str, e.path))}: {e.message}"
            for e in jsonschema.Draft202012Validator(schema).iter_errors(doc)
        ]
        assert not errors, f"{doc['kind']}/{doc['metadata']['name']}: " + "\n".join(errors)


def test_gateway_schema_refuses_unknown_fields():
    """The Gateway API schemas are strict: a misspelt field fails (no vacuous pass)."""
    schema = json.loads((SCHEMAS / "httproute.json").read_text())
    route = {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": "x"},
        "spec": {"parentRefs": [{"name": "chat"}], "rules": [{"backendRef": []}]},
    }
    assert not jsonschema.Draft202012Validator(schema).is_valid(route)


def test_yamllint():
    """yamllint (the repository's .yamllint.yaml, strict) is clean on every YAML file in k8s/."""
    root = manifests.ROOT
    files = sorted(str(p) for p in (root / "k8s").rglob("*.yaml"))
    assert len(files) > 10
    command = [
        sys.executable,
        "-m",
        "yamllint",
        "--strict",
        "-c",
        str(root / ".yamllint.yaml"),
        *files,
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
