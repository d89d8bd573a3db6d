"""The NetworkPolicies allow exactly the flows the stack needs, checked by evaluating them.

A small evaluator of NetworkPolicy semantics (pod and namespace selectors, named ports, policy
types) decides each flow between our pods, the outside world, the cluster DNS and Prometheus,
and in production the redis-ha pods, CloudNativePG's instances and operator, or the managed
database outside.
"""

import pytest

from tests.k8s import manifests

RENDERS = ("staging", "production", "production-cert-manager")
HA_RENDERS = ("production", "production-cert-manager")
OUTSIDE = {"ours": False, "namespace": {"kubernetes.io/metadata.name": "elsewhere"}, "labels": {}}
DNS = {
    "ours": False,
    "namespace": {"kubernetes.io/metadata.name": "kube-system"},
    "labels": {"k8s-app": "kube-dns"},
    "ports": {},
}
PROMETHEUS = {
    "ours": False,
    "namespace": {"kubernetes.io/metadata.name": "monitoring"},
    "labels": {"app.kubernetes.io/name": "prometheus"},
}
# CloudNativePG 1.30: its operator's pod (namespace cnpg-system, as its manifest installs it) and
# the labels and ports it gives an instance pod of the Cluster `postgres` (pkg/specs/pods.go).
CNPG_OPERATOR = {
    "ours": False,
    "namespace": {"kubernetes.io/metadata.name": "cnpg-system"},
    "labels": {"app.kubernetes.io/name": "cloudnative-pg"},
}
CNPG_PORTS = {"postgresql": 5432, "metrics": 9187, "status": 8000}


def cnpg_instance(cluster, role, serial):
    return {
        "cnpg.io/cluster": cluster,
        "cnpg.io/instanceName": f"{cluster}-{serial}",
        "cnpg.io/podRole": "instance",
        "cnpg.io/instanceRole": role,
        "app.kubernetes.io/name": "postgresql",
        "app.kubernetes.io/instance": cluster,
        "app.kubernetes.io/component": "database",
        "app.kubernetes.io/managed-by": "cloudnative-pg",
    }


ALLOWED = [
    ("outside", "nginx", 8080),
    ("outside", "nginx", 8443),
    ("nginx", "web", 8000),
    ("nginx", "ws", 8000),
    ("web", "redis", 6379),
    ("web", "postgres", 5432),
    ("ws", "redis", 6379),
    ("ws", "postgres", 5432),
    ("migrate", "postgres", 5432),
    ("prune", "postgres", 5432),
    ("prometheus", "web", 8081),
    ("prometheus", "ws", 8000),
    *[(pod, "dns", 53) for pod in ("nginx", "web", "ws", "migrate", "prune", "redis", "postgres")],
]
DENIED = [
    ("outside", "web", 8000),
    ("outside", "ws", 8000),
    ("outside", "redis", 6379),
    ("outside", "postgres", 5432),
    ("outside", "nginx", 9113),  # only nginx's listening port is open
    ("outside", "nginx", 8082),  # nginx's internal listener (/nginx-status) is not routed
    ("prune", "redis", 6379),
    ("prune", "outside", 443),
    ("nginx", "redis", 6379),
    ("nginx", "postgres", 5432),
    ("nginx", "web", 8081),  # probes and metrics are not nginx's business
    ("nginx", "outside", 443),
    ("web", "ws", 8000),
    ("web", "outside", 443),  # no way out to the internet from the app
    ("ws", "outside", 443),
    ("migrate", "redis", 6379),
    ("migrate", "outside", 443),
    ("redis", "postgres", 5432),
    ("redis", "outside", 443),
    ("postgres", "outside", 80),
    ("postgres", "outside", 5432),
    ("postgres", "redis", 6379),
    ("prometheus", "redis", 6379),
    ("prometheus", "postgres", 5432),
]
# Production's data tier: the Sentinels for the app, the redis pods among themselves
# (replication, Sentinel gossip), CloudNativePG's operator and replication; nothing more.
HA_ALLOWED = [
    ("web", "redis", 26379),
    ("ws", "redis", 26379),
    ("redis", "redis", 6379),
    ("redis", "redis", 26379),
    ("cnpg-operator", "postgres", 8000),
    ("cnpg-operator", "postgres", 5432),
    ("postgres", "postgres-replica", 5432),
    ("postgres-replica", "postgres", 5432),
    ("postgres-replica", "postgres", 8000),
    ("postgres", "outside", 443),  # the object store (backups) and the API server
    ("postgres", "outside", 6443),  # the API server behind the `kubernetes` Service
]
HA_DENIED = [
    ("outside", "redis", 26379),
    ("nginx", "redis", 26379),
    ("migrate", "redis", 26379),
    ("prometheus", "redis", 26379),
    ("redis", "web", 8000),
    ("redis", "outside", 26379),
    ("outside", "postgres", 8000),
    ("nginx", "postgres", 8000),
    ("web", "postgres", 8000),  # the status port is the operator's
    ("cnpg-operator", "redis", 6379),
    ("cnpg-operator", "web", 8000),
    ("postgres", "web", 8000),
    ("prometheus", "postgres", 9187),  # no scraping of Postgres (test_data_tier.py)
]


def endpoints(docs):
    """Our pods (from the workloads' templates, and a CloudNativePG Cluster's primary and a
    replica) plus the outside, DNS, Prometheus and CloudNativePG's operator; a managed database
    (the Service `postgres` an ExternalName) is outside."""
    (namespace,) = manifests.find(docs, "Namespace")
    ns_name = namespace["metadata"]["name"]
    ns_labels = {**namespace["metadata"].get("labels", {}), "kubernetes.io/metadata.name": ns_name}
    found = {
        "outside": OUTSIDE,
        "dns": DNS,
        "prometheus": PROMETHEUS,
        "cnpg-operator": CNPG_OPERATOR,
    }
    for cluster in manifests.find(docs, "Cluster"):
        name = cluster["metadata"]["name"]
        for key, role, serial in ((name, "primary", 1), (f"{name}-replica", "replica", 2)):
            found[key] = {
                "ours": True,
                "namespace": ns_labels,
                "labels": cnpg_instance(name, role, serial),
                "ports": CNPG_PORTS,
            }
    for service in manifests.find(docs, "Service"):
        if service["spec"].get("type") == "ExternalName":
            found[service["metadata"]["name"]] = {**OUTSIDE, "ports": {}}
    for doc in manifests.workloads(docs):
        ports = {
            p["name"]: p["containerPort"]
            for c in manifests.containers(doc)
            for p in c.get("ports", [])
        }
        found[doc["metadata"]["name"]] = {
            "ours": True,
            "namespace": ns_labels,
            "labels": manifests.pod_template(doc)["metadata"]["labels"],
            "ports": ports,
        }
    return found


def peer_matches(peer, other):
    if "ipBlock" in peer:
        return not other["ours"]  # no exceptions are used in our policies
    if "namespaceSelector" in peer and not manifests.selects(
        peer["namespaceSelector"], other["namespace"]
    ):
        return False
    if "podSelector" in peer:
        if "namespaceSelector" not in peer and not other["ours"]:
            return False
        return manifests.selects(peer["podSelector"], other["labels"])
    return "namespaceSelector" in peer


def port_matches(ports, target, port, protocol):
    if not ports:
        return True
    for item in ports:
        if item.get("protocol", "TCP") != protocol:
            continue
        if "port" not in item:
            return True  # every port of the protocol
        number = item["port"]
        if isinstance(number, str):
            number = target.get("ports", {}).get(number)  # a name the pod lacks: no port
        if number == port:
            return True
    return False


def direction_allows(policies, pod, other, target, port, protocol, kind):
    """Ingress to `pod` from `other`, or egress from `pod` to `other`, as the policies say."""
    key, peers_key = ("ingress", "from") if kind == "Ingress" else ("egress", "to")
    selecting = [
        p for p in policies
        if kind in p["spec"].get("policyTypes", ["Ingress"])
        and manifests.selects(p["spec"]["podSelector"] or {"matchLabels": {}}, pod["labels"])
    ]  # fmt: skip
    if not selecting:
        return True  # a pod no policy selects is not isolated
    for policy in selecting:
        for rule in policy["spec"].get(key, []):
            peers = rule.get(peers_key)
            if (not peers or any(peer_matches(p, other) for p in peers)) and port_matches(
                rule.get("ports"), target, port, protocol
            ):
                return True
    return False


def allowed(docs, source, destination, port):
    points = endpoints(docs)
    src, dst = points[source], points[destination]
    policies = manifests.find(docs, "NetworkPolicy")
    protocol = "UDP" if destination == "dns" else "TCP"
    egress = not src["ours"] or direction_allows(policies, src, dst, dst, port, protocol, "Egress")
    ingress = not dst["ours"] or direction_allows(
        policies, dst, src, dst, port, protocol, "Ingress"
    )
    return egress and ingress


@pytest.mark.parametrize("render", RENDERS)
def test_default_deny(rendered, render):
    """One policy selects every pod and allows nothing, in both directions."""
    docs = rendered[render]
    deny = [
        p
        for p in manifests.find(docs, "NetworkPolicy")
        if p["spec"]["podSelector"] == {} and not {"ingress", "egress"} & set(p["spec"])
    ]
    assert deny and set(deny[0]["spec"]["policyTypes"]) == {"Ingress", "Egress"}


@pytest.mark.parametrize("render", RENDERS)
@pytest.mark.parametrize(("source", "destination", "port"), ALLOWED)
def test_needed_flows_are_allowed(rendered, render, source, destination, port):
    """nginx from outside, nginx to web and ws, the app to redis and postgres, DNS, metrics."""
    assert allowed(rendered[render], source, destination, port)


@pytest.mark.parametrize("render", RENDERS)
@pytest.mark.parametrize(("source", "destination", "port"), DENIED)
def test_other_flows_are_denied(rendered, render, source, destination, port):
    """Everything else is refused: the data tier from outside or nginx, the internet from inside."""
    assert not allowed(rendered[render], source, destination, port)


@pytest.mark.parametrize("render", HA_RENDERS)
@pytest.mark.parametrize(("source", "destination", "port"), HA_ALLOWED)
def test_ha_data_tier_flows_are_allowed(rendered, render, source, destination, port):
    """The app reaches the Sentinels; the redis pods each other on both ports; CloudNativePG's
    operator its instances, the instances each other, the object store and the API server."""
    assert allowed(rendered[render], source, destination, port)


@pytest.mark.parametrize("render", HA_RENDERS)
@pytest.mark.parametrize(("source", "destination", "port"), HA_DENIED)
def test_ha_data_tier_flows_are_denied(rendered, render, source, destination, port):
    """The new ports and peers open nothing else: not the Sentinels to nginx, migrate or the
    outside, not the instances' status port to the app, not the operator to the app."""
    assert not allowed(rendered[render], source, destination, port)


def test_staging_has_no_ha_flows(rendered):
    """Staging's single redis has no Sentinel port, so the rules for it match nothing there, and
    its Postgres may not reach the internet (the CloudNativePG rule selects no pod of it)."""
    docs = rendered["staging"]
    for source, destination, port in [
        ("web", "redis", 26379),
        ("ws", "redis", 26379),
        ("postgres", "outside", 443),
        ("postgres", "outside", 6443),
    ]:
        assert not allowed(docs, source, destination, port)


@pytest.mark.parametrize(("source", "port"), [("web", 5432), ("ws", 5432), ("migrate", 5432)])
def test_managed_database_is_reachable(rendered, source, port):
    """With components/postgres-managed the app may reach the database outside on 5432."""
    assert allowed(rendered["production-managed-db"], source, "postgres", port)


@pytest.mark.parametrize(
    ("source", "port"), [("web", 443), ("nginx", 5432), ("redis", 5432), ("migrate", 6379)]
)
def test_managed_database_opens_nothing_else(rendered, source, port):
    """... and nothing else: no other port, no other pod."""
    assert not allowed(rendered["production-managed-db"], source, "postgres", port)


def test_evaluator_sees_isolation(rendered):
    """Without policies every flow is open (the evaluator is not denying by accident)."""
    docs = [d for d in rendered["production"] if d["kind"] != "NetworkPolicy"]
    assert all(allowed(docs, s, d, p) for s, d, p in DENIED + HA_DENIED)
