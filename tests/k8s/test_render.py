"""Every kustomization renders, and every object passes strict schema validation offline."""

import json
import subprocess
import sys

import kubernetes_validate
import pytest

from tests.k8s import manifests

# The oldest Kubernetes we support, one in between, and the newest kubernetes-validate knows.
VERSIONS = ("1.32.0", "1.34.0", kubernetes_validate.latest_version())
RENDERS = (
    "base",
    "staging",
    "production",
    "production-loadbalancer",
    "production-cert-manager",
    "production-managed-db",
)
# Kinds of CRDs (Gateway API, Prometheus Operator, cert-manager, CloudNativePG) are validated
# against the upstream CRDs' own schemas, made strict (manifests.CRD_SCHEMAS, tests/k8s/schemas).
SCHEMAS = manifests.SCHEMAS
# The CRD kinds each render must hold: every schema is used, none is skipped by accident.
CNPG_KINDS = {"Cluster", "ScheduledBackup"}
CRD_KINDS = {
    "base": set(),
    "staging": {"Gateway", "HTTPRoute"},
    "production": {"Gateway", "HTTPRoute", "PodMonitor", "PrometheusRule", *CNPG_KINDS},
    "production-loadbalancer": {"PodMonitor", "PrometheusRule", *CNPG_KINDS},
    "production-cert-manager": {
        "Gateway",
        "HTTPRoute",
        "PodMonitor",
        "PrometheusRule",
        "Certificate",
        *CNPG_KINDS,
    },
    "production-managed-db": {"Gateway", "HTTPRoute", "PodMonitor", "PrometheusRule"},
}
# What runs `postgres` where no workload does: the CloudNativePG Cluster, or the managed
# database behind an ExternalName Service (test_data_tier.py checks each in detail).
POSTGRES_ELSEWHERE = {
    "production": "Cluster",
    "production-loadbalancer": "Cluster",
    "production-cert-manager": "Cluster",
    "production-managed-db": "ExternalName",
}


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
    """Each kustomization renders every compose component plus the namespace: a workload each
    (prune's a CronJob), or for postgres in production a CloudNativePG Cluster or the managed
    database's name."""
    docs = rendered[render]
    names = {d["metadata"]["name"] for d in manifests.workloads(docs)}
    stack = {"nginx", "web", "ws", "migrate", "prune", "redis", "postgres"}
    if render in POSTGRES_ELSEWHERE:
        assert names == stack - {"postgres"}
        if POSTGRES_ELSEWHERE[render] == "Cluster":
            assert manifests.one(docs, "Cluster", "postgres")
        else:
            assert manifests.one(docs, "Service", "postgres")["spec"]["type"] == "ExternalName"
    else:
        assert names == stack
    assert len(manifests.find(docs, "Namespace")) == 1


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("render", RENDERS)
def test_strict_schema(rendered, render, version):
    """Every object is valid for this Kubernetes version, unknown fields refused."""
    errors = []
    for doc in rendered[render]:
        if manifests.from_crd(doc):
            continue  # test_crd_schema
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


@pytest.mark.parametrize("render", RENDERS)
def test_crd_schema(rendered, render):
    """Objects of CRDs pass the strict schemas of their upstream CRDs: Gateway API v1.6.1,
    prometheus-operator v0.93.0, cert-manager v1.21.1, CloudNativePG v1.30.0; nothing else is
    left unvalidated."""
    docs = rendered[render]
    assert {d["kind"] for d in docs if manifests.from_crd(d)} == CRD_KINDS[render]
    errors = [
        e for doc in docs if manifests.from_crd(doc) for e in manifests.crd_schema_errors(doc)
    ]
    assert not errors, "\n".join(errors)


@pytest.mark.parametrize(
    ("doc", "wrong", "right"),
    [
        (
            {
                "apiVersion": "gateway.networking.k8s.io/v1",
                "kind": "HTTPRoute",
                "metadata": {"name": "x"},
                "spec": {"parentRefs": [{"name": "chat"}], "rules": [{"backendRef": []}]},
            },
            "backendRef",
            "backendRefs",
        ),
        (
            {
                "apiVersion": "monitoring.coreos.com/v1",
                "kind": "PodMonitor",
                "metadata": {"name": "x"},
                "spec": {"selector": {}, "podMetricsEndpoints": [{"portName": "http"}]},
            },
            "portName",
            "port",
        ),
        (
            {
                "apiVersion": "monitoring.coreos.com/v1",
                "kind": "PrometheusRule",
                "metadata": {"name": "x"},
                "spec": {
                    "groups": [{"name": "g", "rules": [{"alert": "A", "expr": "1", "fro": "1m"}]}]
                },
            },
            "fro",
            "for",
        ),
        (
            {
                "apiVersion": "cert-manager.io/v1",
                "kind": "Certificate",
                "metadata": {"name": "x"},
                "spec": {"secretName": "s", "issuerRef": {"name": "i"}, "dnsName": ["a"]},
            },
            "dnsName",
            "dnsNames",
        ),
        (
            {
                "apiVersion": "cert-manager.io/v1",
                "kind": "ClusterIssuer",
                "metadata": {"name": "x"},
                "spec": {
                    "acme": {
                        "server": "https://acme.example/directory",
                        "privateKeySecretRef": {"name": "k"},
                        "solvers": [{"http01": {"gatewayHTTPRoutes": {}}}],
                    }
                },
            },
            "gatewayHTTPRoutes",
            "gatewayHTTPRoute",
        ),
        (
            {
                "apiVersion": "postgresql.cnpg.io/v1",
                "kind": "Cluster",
                "metadata": {"name": "x"},
                "spec": {"instances": 3, "bootstrap": {"initdb": {"databse": "chat"}}},
            },
            "databse",
            "database",
        ),
        (
            {
                "apiVersion": "postgresql.cnpg.io/v1",
                "kind": "ScheduledBackup",
                "metadata": {"name": "x"},
                "spec": {"schedule": "0 0 3 * * *", "cluster": {"name": "x"}, "imediate": True},
            },
            "imediate",
            "immediate",
        ),
    ],
    ids=[
        "HTTPRoute",
        "PodMonitor",
        "PrometheusRule",
        "Certificate",
        "ClusterIssuer",
        "Cluster",
        "ScheduledBackup",
    ],
)
def test_crd_schemas_refuse_unknown_fields(doc, wrong, right):
    """Each CRD schema is strict: a misspelt field fails, and only it (no vacuous pass)."""
    errors = manifests.crd_schema_errors(doc)
    assert errors and all(wrong in e for e in errors), errors
    fixed = json.loads(json.dumps(doc).replace(f'"{wrong}"', f'"{right}"'))
    assert manifests.crd_schema_errors(fixed) == []


def test_yamllint():
    """yamllint (the repository's .yamllint.yaml, strict) is clean on every YAML file in k8s/ and
    on the kustomizations beside the files they generate ConfigMaps from (nginx/, redis/)."""
    root = manifests.ROOT
    files = sorted(str(p) for p in (root / "k8s").rglob("*.yaml"))
    files += [str(root / folder / "kustomization.yaml") for folder in ("nginx", "redis")]
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
