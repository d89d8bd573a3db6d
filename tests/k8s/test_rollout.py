"""Rollouts: migrations before new app pods serve, no capacity dip, WebSockets drained within
the grace period and nginx's timeouts, replicas spread over nodes, overlays that only patch."""

import re

import pytest
import yaml

from tests.k8s import manifests

ROOT = manifests.ROOT
RENDERS = ("staging", "production", "production-loadbalancer")
STATELESS = ("nginx", "web", "ws")


def nginx_seconds(directive, conf=None, location=None):
    """A `directive 60s;` of nginx/conf/CONF, or of the block `location LOCATION {` in whichever
    file holds it, in seconds."""
    if conf:
        text = (ROOT / "nginx/conf" / conf).read_text()
    else:
        start = f"location {location} {{"
        (text,) = [t for p in (ROOT / "nginx/conf").iterdir() if start in (t := p.read_text())]
        text = text[text.index(start) :]
        text = text[: re.search(r"^\s*\}\s*$", text, re.M).start()]  # the block's own closing line
    return int(re.search(rf"^\s*{directive}\s+(\d+)s;", text, re.M)[1])


def settings_default(name):
    """The default of an integer setting in chatsite/settings.py (env.int("NAME", default))."""
    text = (ROOT / "services/chat/chatsite/settings.py").read_text()
    return int(re.search(rf'env\.(?:int|float)\("{name}", (\d+)', text)[1])


def setting(docs, container, name):
    value = manifests.environment(docs, container).get(name)
    return float(value) if value else settings_default(name)


@pytest.mark.parametrize("render", RENDERS)
@pytest.mark.parametrize("name", STATELESS)
def test_no_capacity_dip(rendered, render, name):
    """Rolling updates add a pod before removing one: maxUnavailable 0, maxSurge above 0."""
    strategy = manifests.one(rendered[render], "Deployment", name)["spec"]["strategy"]
    assert strategy["type"] == "RollingUpdate"
    assert strategy["rollingUpdate"]["maxUnavailable"] == 0
    assert strategy["rollingUpdate"]["maxSurge"] not in (0, "0%")


@pytest.mark.parametrize("render", RENDERS)
def test_migrations_run_before_new_pods_serve(rendered, render):
    """The migrate Job runs start-migrate; web and ws first wait, in an init container of the
    same image, until `migrate --check` passes, so no pod serves an unmigrated schema."""
    docs = rendered[render]
    job = manifests.one(docs, "Job", "migrate")
    image = manifests.main_container(job)["image"]
    assert manifests.main_container(job)["args"] == ["start-migrate"]
    assert manifests.pod_spec(job)["restartPolicy"] == "Never" and job["spec"]["backoffLimit"] > 0
    for name in ("web", "ws"):
        doc = manifests.one(docs, "Deployment", name)
        (init,) = manifests.pod_spec(doc)["initContainers"]
        assert init["image"] == image == manifests.main_container(doc)["image"]
        script = " ".join(init["command"])
        assert "python manage.py migrate --check" in script and script.startswith("sh -c until ")


@pytest.mark.parametrize("render", RENDERS)
def test_ws_drains_within_grace_and_nginx_timeouts(rendered, render):
    """preStop + WS_DRAIN_SECONDS + Daphne's application close timeout fit in the grace period,
    which is shorter than nginx's proxy_read_timeout for /ws/; Daphne pings more often."""
    docs = rendered[render]
    ws = manifests.one(docs, "Deployment", "ws")
    container = manifests.main_container(ws)
    pre_stop = container["lifecycle"]["preStop"]["sleep"]["seconds"]
    drain = setting(docs, container, "WS_DRAIN_SECONDS")
    close = setting(docs, container, "DAPHNE_APPLICATION_CLOSE_TIMEOUT")
    grace = manifests.pod_spec(ws)["terminationGracePeriodSeconds"]
    read_timeout = nginx_seconds("proxy_read_timeout", location="/ws/")
    assert pre_stop + drain + close <= grace < read_timeout
    assert setting(docs, container, "DAPHNE_PING_INTERVAL") < read_timeout


@pytest.mark.parametrize("render", RENDERS)
@pytest.mark.parametrize("name", ["web", "nginx"])
def test_page_requests_finish_within_grace(rendered, render, name):
    """preStop + the longest page request nginx waits for (uwsgi/proxy read timeout of the web
    upstream) fit in the grace period of web and of nginx."""
    doc = manifests.one(rendered[render], "Deployment", name)
    pre_stop = manifests.main_container(doc)["lifecycle"]["preStop"]["sleep"]["seconds"]
    longest = max(
        nginx_seconds("uwsgi_read_timeout", "web-uwsgi.conf"),
        nginx_seconds("proxy_read_timeout", "web-gunicorn.conf"),
    )
    assert pre_stop + longest <= manifests.pod_spec(doc)["terminationGracePeriodSeconds"]


@pytest.mark.parametrize("render", RENDERS)
@pytest.mark.parametrize("name", STATELESS)
def test_spread_across_nodes(rendered, render, name):
    """Replicas spread over nodes (and zones), per rollout revision; in production as a rule."""
    doc = manifests.one(rendered[render], "Deployment", name)
    labels = doc["spec"]["template"]["metadata"]["labels"]
    constraints = {
        c["topologyKey"]: c for c in manifests.pod_spec(doc)["topologySpreadConstraints"]
    }
    host = constraints["kubernetes.io/hostname"]
    assert host["maxSkew"] == 1 and manifests.selects(host["labelSelector"], labels)
    assert host["matchLabelKeys"] == ["pod-template-hash"]
    assert "topology.kubernetes.io/zone" in constraints
    expected = "DoNotSchedule" if render.startswith("production") else "ScheduleAnyway"
    assert host["whenUnsatisfiable"] == expected


@pytest.mark.parametrize("render", RENDERS)
def test_nginx_upstreams_are_fully_qualified(rendered, render):
    """nginx's resolver ignores search domains: WEB_UPSTREAM and WS_UPSTREAM are start-nginx's
    defaults (web:8000, ws:8000) qualified with the pod's namespace and the cluster domain."""
    docs = rendered[render]
    container = manifests.main_container(manifests.one(docs, "Deployment", "nginx"))
    env = manifests.environment(docs, container)
    names = [e["name"] for e in container["env"]]
    start = (ROOT / "nginx/start-nginx").read_text()
    assert env["POD_NAMESPACE"] == "<fieldRef:metadata.namespace>"
    assert re.fullmatch(r"[a-z0-9.-]+", env["CLUSTER_DOMAIN"])
    for variable in ("WEB_UPSTREAM", "WS_UPSTREAM"):
        host, port = re.search(rf"{variable}:=(\w+):(\d+)", start).groups()
        assert env[variable] == f"{host}.$(POD_NAMESPACE).svc.$(CLUSTER_DOMAIN):{port}"
        assert names.index("POD_NAMESPACE") < names.index(variable)  # $(VAR) sees earlier ones


@pytest.mark.parametrize("overlay", manifests.OVERLAYS)
def test_overlays_only_patch(overlay):
    """An overlay sets namespace, labels, images (release/), replicas, config values and patches on
    top of the base and the components: no manifest of its own."""
    folder = ROOT / "k8s/overlays" / overlay
    kustomization = yaml.safe_load((folder / "kustomization.yaml").read_text())
    allowed = {
        "apiVersion", "kind", "namespace", "labels", "resources", "components", "images",
        "replicas", "configMapGenerator", "secretGenerator", "patches",
    }  # fmt: skip
    assert set(kustomization) <= allowed
    assert kustomization["resources"] == ["../../base"]
    # Its one component of its own: release/, the images' tag or digest (tests/k8s/test_images.py).
    components = kustomization.get("components", [])
    assert components[0] == "release"
    assert all(c.startswith("../../components/") for c in components[1:])
    release = yaml.safe_load((folder / "release/kustomization.yaml").read_text())
    assert set(release) == {"apiVersion", "kind", "images"}, "release/ sets images only"
    assert all(g.get("behavior") == "merge" for g in kustomization["configMapGenerator"])
    patches = {p["path"] for p in kustomization["patches"] if "path" in p}
    files = {p.name for p in folder.iterdir()} - {"secrets.env"}
    assert files == {"kustomization.yaml", "secrets.env.example", "release", *patches}
