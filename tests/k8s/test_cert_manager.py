"""TLS with cert-manager: the README's recipe (production-cert-manager) issues the Gateway's
Secret for the overlay's host name through the ClusterIssuer, whose HTTP-01 solver answers
through the Gateway's HTTP listener and may be reached despite default-deny."""

import yaml

from tests.k8s import manifests
from tests.k8s.test_network_policy import OUTSIDE, direction_allows

RENDER = "production-cert-manager"
ISSUER_FILE = manifests.ROOT / "k8s/cert-manager/cluster-issuer.yaml"
SOLVER_LABELS = {"acme.cert-manager.io/http01-solver": "true"}  # cert-manager's pod.go
SOLVER_PORT = 8089  # cert-manager's acmeSolverListenPort


def issuer():
    return yaml.safe_load(ISSUER_FILE.read_text())


def test_cluster_issuer_schema():
    """The ClusterIssuer passes cert-manager v1.21.1's strict CRD schema."""
    doc = issuer()
    assert doc["kind"] == "ClusterIssuer"
    assert manifests.crd_schema_errors(doc) == []


def test_cluster_issuer_solves_http01_through_the_gateway(rendered):
    """ACME HTTP-01 via an HTTPRoute on the Gateway `chat`'s HTTP listener, in the Certificate's
    own namespace (the parentRef names none), so one issuer serves every overlay."""
    acme = issuer()["spec"]["acme"]
    assert acme["server"].startswith("https://acme")
    (solver,) = acme["solvers"]
    (parent,) = solver["http01"]["gatewayHTTPRoute"]["parentRefs"]
    assert "namespace" not in parent
    for overlay in (RENDER, "staging"):
        gateway = manifests.one(rendered[overlay], "Gateway", parent["name"])
        listeners = {item["name"]: item for item in gateway["spec"]["listeners"]}
        assert listeners[parent["sectionName"]]["protocol"] == "HTTP"


def test_certificate_fills_the_gateways_secret(rendered):
    """The Certificate, issued by the ClusterIssuer of k8s/cert-manager, writes the Secret the
    HTTPS listener reads, for exactly the host names Django allows and the listener serves."""
    docs = rendered[RENDER]
    (certificate,) = manifests.find(docs, "Certificate")
    spec = certificate["spec"]
    assert spec["issuerRef"] == {
        "group": "cert-manager.io",
        "kind": "ClusterIssuer",
        "name": issuer()["metadata"]["name"],
    }
    listeners = {
        i["protocol"]: i for i in manifests.one(docs, "Gateway", "chat")["spec"]["listeners"]
    }
    (ref,) = listeners["HTTPS"]["tls"]["certificateRefs"]
    assert spec["secretName"] == ref["name"]
    config = manifests.generated(docs, "ConfigMap", "chat-config")["data"]
    assert spec["dnsNames"] == config["DJANGO_ALLOWED_HOSTS"].split(",")
    assert listeners["HTTPS"]["hostname"] in spec["dnsNames"]


def test_cluster_issuer_is_in_no_overlay(rendered):
    """The ClusterIssuer is the cluster's, applied once: no overlay renders it (two overlays
    would fight over its labels)."""
    for docs in rendered.values():
        assert not manifests.find(docs, "ClusterIssuer")


def solver_pod(docs):
    (namespace,) = manifests.find(docs, "Namespace")
    name = namespace["metadata"]["name"]
    return {
        "ours": True,
        "namespace": {**namespace["metadata"]["labels"], "kubernetes.io/metadata.name": name},
        "labels": SOLVER_LABELS,
        "ports": {"http": SOLVER_PORT},
    }


def solver_reachable(docs, port):
    pod = solver_pod(docs)
    policies = manifests.find(docs, "NetworkPolicy")
    return direction_allows(policies, pod, OUTSIDE, pod, port, "TCP", "Ingress")


def test_solver_pod_is_reachable_on_its_port_only(rendered):
    """With the component, the Gateway (from outside) reaches the solver pod on 8089, nothing
    else; the solver opens no connection; without it, default-deny would block the challenge."""
    docs = rendered[RENDER]
    assert solver_reachable(docs, SOLVER_PORT)
    assert not solver_reachable(docs, 8080)
    pod, policies = solver_pod(docs), manifests.find(docs, "NetworkPolicy")
    assert not direction_allows(policies, pod, OUTSIDE, OUTSIDE, 443, "TCP", "Egress")
    assert not solver_reachable(rendered["production"], SOLVER_PORT)
