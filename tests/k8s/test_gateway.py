"""Exposure: the Gateway and its HTTPRoutes lead to the nginx Service for the overlay's host
name only; the LoadBalancer alternative renders without them."""

import pytest

from tests.k8s import manifests


def hosts(docs):
    config = manifests.generated(docs, "ConfigMap", "chat-config")["data"]
    return config["DJANGO_ALLOWED_HOSTS"].split(","), config["DJANGO_CSRF_TRUSTED_ORIGINS"]


@pytest.mark.parametrize("overlay", manifests.OVERLAYS)
def test_routes_lead_to_nginx(rendered, overlay):
    """Every backendRef is the nginx Service on a port it exposes; every parentRef names a
    listener of the Gateway."""
    docs = rendered[overlay]
    gateway = manifests.one(docs, "Gateway", "chat")
    listeners = {item["name"]: item for item in gateway["spec"]["listeners"]}
    nginx_ports = {p["port"] for p in manifests.one(docs, "Service", "nginx")["spec"]["ports"]}
    for route in manifests.find(docs, "HTTPRoute"):
        for parent in route["spec"]["parentRefs"]:
            assert parent["name"] == "chat" and parent["sectionName"] in listeners
        for rule in route["spec"]["rules"]:
            for backend in rule.get("backendRefs", []):
                assert backend["name"] == "nginx" and backend["port"] in nginx_ports


@pytest.mark.parametrize("overlay", manifests.OVERLAYS)
def test_host_names_agree(rendered, overlay):
    """Listeners and routes answer the host names Django allows, and CSRF trusts their https
    origin; the example domain of the base is replaced."""
    docs = rendered[overlay]
    allowed, csrf = hosts(docs)
    for listener in manifests.one(docs, "Gateway", "chat")["spec"]["listeners"]:
        assert listener["hostname"] in allowed
    for route in manifests.find(docs, "HTTPRoute"):
        assert route["spec"]["hostnames"] == allowed
    assert csrf.split(",") == [f"https://{h}" for h in allowed]


@pytest.mark.parametrize("overlay", manifests.OVERLAYS)
def test_https_only(rendered, overlay):
    """HTTPS terminates at the Gateway with a certificate; plain HTTP only redirects there; nginx
    trusts the Gateway's X-Forwarded-Proto and Django insists on HTTPS."""
    docs = rendered[overlay]
    listeners = {
        i["protocol"]: i for i in manifests.one(docs, "Gateway", "chat")["spec"]["listeners"]
    }
    assert listeners["HTTPS"]["tls"]["mode"] == "Terminate"
    assert listeners["HTTPS"]["tls"]["certificateRefs"]
    redirect = manifests.one(docs, "HTTPRoute", "chat-redirect")["spec"]
    assert redirect["parentRefs"][0]["sectionName"] == listeners["HTTP"]["name"]
    for rule in redirect["rules"]:
        assert "backendRefs" not in rule
        assert rule["filters"] == [
            {"type": "RequestRedirect", "requestRedirect": {"scheme": "https", "statusCode": 301}}
        ]
    nginx_env = manifests.generated(docs, "ConfigMap", "nginx-env")["data"]
    assert nginx_env["NGINX_TRUST_FORWARDED_PROTO"] == "true"
    assert nginx_env["NGINX_TLS"] == "off"  # TLS ends once, at the Gateway
    config = manifests.generated(docs, "ConfigMap", "chat-config")["data"]
    assert config["DJANGO_SECURE_SSL_REDIRECT"] == config["DJANGO_SECURE_COOKIES"] == "true"


@pytest.mark.parametrize("overlay", manifests.OVERLAYS)
def test_websockets_have_no_request_timeout(rendered, overlay):
    """The /ws/ route disables the Gateway's request timeout: a WebSocket lives for hours."""
    route = manifests.one(rendered[overlay], "HTTPRoute", "chat")["spec"]
    (ws,) = [r for r in route["rules"] if r["matches"][0]["path"]["value"] == "/ws/"]
    assert ws["timeouts"]["request"] == "0s"


def test_loadbalancer_alternative(rendered):
    """With components/loadbalancer, the nginx Service is a LoadBalancer on 80 and 443 keeping
    client addresses, nginx's HTTPS redirect points at 443, no Gateway API object exists, and
    nginx trusts no forwarded scheme."""
    docs = rendered["production-loadbalancer"]
    spec = manifests.one(docs, "Service", "nginx")["spec"]
    assert spec["type"] == "LoadBalancer" and spec["externalTrafficPolicy"] == "Local"
    assert {p["name"]: p["port"] for p in spec["ports"]} == {"http": 80, "https": 443}
    assert not [d for d in docs if d["apiVersion"].startswith("gateway.networking.k8s.io/")]
    nginx_env = manifests.generated(docs, "ConfigMap", "nginx-env")["data"]
    assert nginx_env["NGINX_TRUST_FORWARDED_PROTO"] == "false"
    assert nginx_env["NGINX_PUBLIC_HTTPS_PORT"] == "443"
