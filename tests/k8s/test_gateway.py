"""Exposure: the Gateway and its HTTPRoutes lead to the nginx Service for the overlay's host
name only, over HTTPS only (plain HTTP gets a redirect and nothing else); the LoadBalancer
alternative renders without them and is HTTPS-only at nginx."""

import copy

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


HTTPS_ONLY = (*manifests.OVERLAYS, "production-cert-manager")
REDIRECT = [{"type": "RequestRedirect", "requestRedirect": {"scheme": "https", "statusCode": 301}}]


def attached_listeners(route, gateway):
    """Names of the Gateway listeners a route attaches to: a parentRef without sectionName (or
    port) attaches to every listener of the Gateway, which is how a plain-HTTP route slips in."""
    listeners = gateway["spec"]["listeners"]
    names = set()
    for parent in route["spec"]["parentRefs"]:
        if (
            parent.get("kind", "Gateway") != "Gateway"
            or parent["name"] != gateway["metadata"]["name"]
        ):
            continue
        names |= {
            item["name"]
            for item in listeners
            if parent.get("sectionName", item["name"]) == item["name"]
            and parent.get("port", item["port"]) == item["port"]
        }
    return names


def plain_http_leaks(docs):
    """What plain HTTP could reach besides a redirect: routes on a non-HTTPS listener that have
    a backend or anything but the HTTPS redirect, and Services exposed outside the cluster."""
    gateway = manifests.one(docs, "Gateway", "chat")
    plain = {i["name"] for i in gateway["spec"]["listeners"] if i["protocol"] != "HTTPS"}
    leaks = []
    for route in manifests.find(docs, "HTTPRoute"):
        if not attached_listeners(route, gateway) & plain:
            continue
        for rule in route["spec"]["rules"]:
            if rule.get("backendRefs") or rule.get("filters") != REDIRECT:
                leaks.append(f"HTTPRoute {route['metadata']['name']} serves plain HTTP: {rule}")
    for service in manifests.find(docs, "Service"):
        if service["spec"].get("type", "ClusterIP") not in ("ClusterIP", "ExternalName"):
            leaks.append(f"Service {service['metadata']['name']} is {service['spec']['type']}")
    leaks += [f"Ingress {i['metadata']['name']}" for i in manifests.find(docs, "Ingress")]
    return leaks


@pytest.mark.parametrize("overlay", HTTPS_ONLY)
def test_https_only(rendered, overlay):
    """HTTPS terminates at the Gateway with a certificate; the app's route hangs on the HTTPS
    listener only; plain HTTP reaches nothing but the redirect; nginx trusts the Gateway's
    X-Forwarded-Proto and Django insists on HTTPS (redirect, Secure cookies, HSTS)."""
    docs = rendered[overlay]
    gateway = manifests.one(docs, "Gateway", "chat")
    by_protocol = {}
    for listener in gateway["spec"]["listeners"]:
        by_protocol.setdefault(listener["protocol"], []).append(listener)
    assert sorted(by_protocol) == ["HTTP", "HTTPS"]
    ((http,), (https,)) = by_protocol["HTTP"], by_protocol["HTTPS"]
    assert (http["port"], https["port"]) == (80, 443)
    assert https["tls"]["mode"] == "Terminate"
    assert https["tls"]["certificateRefs"] == [{"kind": "Secret", "name": "chat-tls"}]

    app = manifests.one(docs, "HTTPRoute", "chat")
    assert attached_listeners(app, gateway) == {https["name"]}
    redirect = manifests.one(docs, "HTTPRoute", "chat-redirect")
    assert attached_listeners(redirect, gateway) == {http["name"]}
    assert [rule.get("filters") for rule in redirect["spec"]["rules"]] == [REDIRECT]
    assert plain_http_leaks(docs) == []

    nginx_env = manifests.generated(docs, "ConfigMap", "nginx-env")["data"]
    assert nginx_env["NGINX_TRUST_FORWARDED_PROTO"] == "true"
    assert nginx_env["NGINX_TLS"] == "off"  # TLS ends once, at the Gateway
    config = manifests.generated(docs, "ConfigMap", "chat-config")["data"]
    assert config["DJANGO_SECURE_SSL_REDIRECT"] == config["DJANGO_SECURE_COOKIES"] == "true"
    assert int(config["DJANGO_HSTS_SECONDS"]) >= 31536000


LIMITS = (
    "NGINX_WS_CONN_PER_IP",
    "NGINX_WS_HANDSHAKES_PER_SEC",
    "NGINX_WS_HANDSHAKE_BURST",
    "NGINX_REQ_PER_SEC",
    "NGINX_REQ_BURST",
)


def test_gateway_keeps_per_client_limits(rendered):
    """Behind the Gateway nginx takes client addresses from the Gateway's X-Forwarded-For
    (NGINX_TRUSTED_PROXIES set) and keeps compose's per-address limits: no blanket ceiling
    (the 20 000 sockets and 1 000 requests/s it used to set for everyone together)."""
    from chatsite.config import DECLARED, text

    base = manifests.generated(rendered["staging"], "ConfigMap", "nginx-env")["data"]
    for overlay in ("production", "production-cert-manager"):
        nginx_env = manifests.generated(rendered[overlay], "ConfigMap", "nginx-env")["data"]
        assert nginx_env["NGINX_TRUSTED_PROXIES"], overlay
        for name in LIMITS:
            assert nginx_env[name] == base[name] == text(DECLARED[name].default), (overlay, name)


def test_https_only_check_sees_a_plain_route(rendered):
    """The check above is not vacuous: the app's route without its sectionName (so on every
    listener, HTTP included), or a LoadBalancer Service, is reported."""
    docs = copy.deepcopy(rendered["production"])
    for parent in manifests.one(docs, "HTTPRoute", "chat")["spec"]["parentRefs"]:
        del parent["sectionName"]
    manifests.one(docs, "Service", "nginx")["spec"]["type"] = "LoadBalancer"
    leaks = plain_http_leaks(docs)
    assert len(leaks) == 3, leaks  # the /ws/ and / rules, and the Service
    assert leaks[0].startswith("HTTPRoute chat serves plain HTTP")


@pytest.mark.parametrize("overlay", manifests.OVERLAYS)
def test_websockets_have_no_request_timeout(rendered, overlay):
    """The /ws/ route disables the Gateway's request timeout: a WebSocket lives for hours."""
    route = manifests.one(rendered[overlay], "HTTPRoute", "chat")["spec"]
    (ws,) = [r for r in route["rules"] if r["matches"][0]["path"]["value"] == "/ws/"]
    assert ws["timeouts"]["request"] == "0s"


def test_loadbalancer_alternative(rendered):
    """With components/loadbalancer, the nginx Service is a LoadBalancer on 80 and 443 keeping
    client addresses, no Gateway API object exists, and it is HTTPS-only like compose's
    production mode: nginx terminates TLS with the Secret chat-tls, port 80 only redirects (to
    443), nginx trusts no forwarded scheme, and Django insists on HTTPS."""
    docs = rendered["production-loadbalancer"]
    spec = manifests.one(docs, "Service", "nginx")["spec"]
    assert spec["type"] == "LoadBalancer" and spec["externalTrafficPolicy"] == "Local"
    assert {p["name"]: p["port"] for p in spec["ports"]} == {"http": 80, "https": 443}
    assert not [d for d in docs if d["apiVersion"].startswith("gateway.networking.k8s.io/")]
    nginx_env = manifests.generated(docs, "ConfigMap", "nginx-env")["data"]
    assert nginx_env["NGINX_TLS"] == "on"
    assert nginx_env["NGINX_TRUST_FORWARDED_PROTO"] == "false"
    assert nginx_env["NGINX_PUBLIC_HTTPS_PORT"] == "443"
    assert nginx_env["NGINX_TRUSTED_PROXIES"] == ""  # the peer is the client: believe no header
    volumes = manifests.pod_spec(manifests.one(docs, "Deployment", "nginx"))["volumes"]
    (tls,) = [v for v in volumes if v["name"] == "tls"]
    assert tls["secret"]["secretName"] == "chat-tls"
    config = manifests.generated(docs, "ConfigMap", "chat-config")["data"]
    assert config["DJANGO_SECURE_SSL_REDIRECT"] == config["DJANGO_SECURE_COOKIES"] == "true"
    assert int(config["DJANGO_HSTS_SECONDS"]) >= 31536000
