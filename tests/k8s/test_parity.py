"""Kubernetes mirrors compose.yaml: names, images, commands, variables, ports and health checks.

compose.yaml is read with PyYAML and interpolated at its defaults (tests/k8s/compose.py); the
manifests are the `defaults` render: the base plus a Secret, so its values are compose's too.
"""

import re
import shlex
from urllib.parse import urlsplit

import pytest

from tests.k8s import compose, manifests

ROOT = manifests.ROOT
SERVICES = compose.services()
LONG_RUNNING = sorted(compose.long_running())
ONE_SHOT = sorted(compose.one_shot())
SCHEDULED = sorted(compose.scheduled())
# Variables only Kubernetes has, and why. Anything else must be compose's.
K8S_ONLY = {
    "nginx": {
        # nginx's resolver ignores resolv.conf search domains, so start-nginx's defaults
        # (web:8000, ws:8000) must become web.<namespace>.svc.<cluster domain>:8000.
        "WEB_UPSTREAM",
        "WS_UPSTREAM",
        "POD_NAMESPACE",
        "CLUSTER_DOMAIN",
    },
}


def k8s(rendered, name):
    return manifests.workload(rendered["defaults"], name)


def test_compose_is_read():
    """The helper finds compose's services and interpolates them (no vacuous pass)."""
    assert {"nginx", "web", "ws", "redis", "postgres"} <= set(LONG_RUNNING)
    assert ONE_SHOT == ["migrate"]
    assert SCHEDULED == ["prune"]
    assert SERVICES["web"]["image"] == "chatstack/chat:latest"
    env = compose.environment(SERVICES["web"])
    assert env["DATABASE_URL"] == "postgres://chat:$(POSTGRES_PASSWORD)@postgres:5432/chat"


@pytest.mark.parametrize("name", LONG_RUNNING)
def test_long_running_service_has_workload_and_service(rendered, name):
    """Each long-running compose service is a Deployment or StatefulSet and a Service, same name."""
    doc = k8s(rendered, name)
    assert doc["kind"] in ("Deployment", "StatefulSet")
    service = manifests.one(rendered["defaults"], "Service", name)
    labels = doc["spec"]["template"]["metadata"]["labels"]
    assert manifests.selects({"matchLabels": service["spec"]["selector"]}, labels)


@pytest.mark.parametrize("name", ONE_SHOT)
def test_one_shot_service_is_a_job(rendered, name):
    """Each one-shot compose service (restart: "no") is a Job of the same name."""
    assert k8s(rendered, name)["kind"] == "Job"


CRON_HOURLY = re.compile(r"[0-5]?\d \* \* \* \*")


@pytest.mark.parametrize("name", SCHEDULED)
def test_scheduled_service_is_a_cronjob(rendered, name):
    """A compose service that runs its command every N seconds (`--every N`) is a CronJob of the
    same name running that command once, on the same period (hourly), one run at a time."""
    doc = k8s(rendered, name)
    assert doc["kind"] == "CronJob"
    once, seconds = compose.every(SERVICES[name])
    assert manifests.main_container(doc)["args"] == once
    assert seconds == 3600 and CRON_HOURLY.fullmatch(doc["spec"]["schedule"]), doc["spec"]
    assert doc["spec"]["concurrencyPolicy"] == "Forbid"


def test_no_component_that_compose_lacks(rendered):
    """Every workload and Service is named after a compose service."""
    docs = rendered["defaults"]
    names = {d["metadata"]["name"] for d in manifests.workloads(docs)}
    names |= {d["metadata"]["name"] for d in manifests.find(docs, "Service")}
    assert names <= set(SERVICES)


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_same_image(rendered, name):
    """The main container runs compose's image (at its default tag), init containers too; the
    Kubernetes name may spell out Docker Hub and pin the build by digest (test_images.py)."""
    doc = k8s(rendered, name)
    main = manifests.main_container(doc)
    for container in [main, *manifests.pod_spec(doc).get("initContainers", [])]:
        assert manifests.compose_name(container["image"]) == SERVICES[name]["image"], container[
            "name"
        ]


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_same_command(rendered, name):
    """`args` is compose's `command` and the image's entrypoint is kept, as compose keeps it."""
    container = manifests.main_container(k8s(rendered, name))
    command = SERVICES[name].get("command")
    if isinstance(command, str):
        command = shlex.split(command)
    if name in SCHEDULED:  # the CronJob runs it once per period
        command = compose.every(SERVICES[name])[0]
    assert "command" not in container
    assert container.get("args") == command


def allowed_extras(name):
    """Variables compose interpolates into the service (k8s needs them to build the same values)."""
    raw = compose.raw()["services"][name]
    return compose.variables([raw.get("environment"), raw.get("command")]) | K8S_ONLY.get(
        name, set()
    )


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_same_environment(rendered, name):
    """Every compose variable is set to compose's value; an extra is documented or a passthrough."""
    docs = rendered["defaults"]
    expected = compose.environment(SERVICES[name])
    actual = manifests.environment(docs, manifests.main_container(k8s(rendered, name)))
    assert sorted(set(expected) - set(actual)) == [], "variables compose sets and k8s does not"
    extras = set(actual) - set(expected)
    assert sorted(extras - allowed_extras(name)) == [], "variables compose does not know"
    for extra in extras - K8S_ONLY.get(name, set()):
        assert actual[extra] == f"$({extra})", f"{extra} must come from the Secret key {extra}"
    assert {k: actual[k] for k in expected} == expected


@pytest.mark.parametrize("name", ["web", "ws"])
def test_init_containers_see_the_same_environment(rendered, name):
    """wait-for-migrations runs with exactly the settings of the container it guards."""
    docs, doc = rendered["defaults"], k8s(rendered, name)
    main = manifests.environment(docs, manifests.main_container(doc))
    for init in manifests.pod_spec(doc)["initContainers"]:
        assert manifests.environment(docs, init) == main


# Production runs compose.ha.yaml's data tier: components/redis-ha and components/postgres-cnpg
# replace the redis and postgres workloads (test_data_tier.py compares them with compose.ha.yaml),
# and the app gets the variables compose.ha.yaml adds for it.
HA_SERVICES = compose.merged_services(ROOT / "compose.yaml", ROOT / "compose.ha.yaml")
REPLACED = {"production": {"redis", "postgres"}}


def ha_additions(name):
    """Variables compose.ha.yaml gives `name` that compose.yaml does not (REDIS_SENTINELS, ...)."""
    return set(compose.environment(HA_SERVICES[name])) - set(compose.environment(SERVICES[name]))


@pytest.mark.parametrize(
    ("overlay", "name"),
    [(o, n) for o in manifests.OVERLAYS for n in sorted(SERVICES) if n not in REPLACED.get(o, ())],
)
def test_overlays_keep_the_variable_names(rendered, overlay, name):
    """Overlays change values only: each container sees the same variable names as the base,
    plus, in production, those compose.ha.yaml adds for it (and only those)."""

    def names(render):
        container = manifests.main_container(manifests.workload(rendered[render], name))
        return set(manifests.environment(rendered[render], container))

    added = ha_additions(name) if overlay in REPLACED else set()
    assert names(overlay) == names("defaults") | added


def test_production_adds_the_ha_variables(rendered):
    """The additions above are real: compose.ha.yaml gives web REDIS_SENTINELS and
    REDIS_MASTER_NAME, which the base lacks and production has."""
    added = ha_additions("web")
    assert {"REDIS_SENTINELS", "REDIS_MASTER_NAME"} <= added
    web = manifests.main_container(manifests.workload(rendered["defaults"], "web"))
    assert not added & set(manifests.environment(rendered["defaults"], web)) - {"REDIS_PASSWORD"}


def addressed_ports(name):
    """Ports other components use to reach `name`: URLs in compose, start-nginx's upstreams,
    and the port compose publishes."""
    text = " ".join(
        " ".join(compose.environment(s).values()) + " " + " ".join(s.get("command") or [])
        for s in SERVICES.values()
    )
    text += " " + (ROOT / "nginx/start-nginx").read_text()
    ports = {int(p) for p in re.findall(rf"(?<![\w.-]){re.escape(name)}:(\d+)\b", text)}
    for mapping in SERVICES[name].get("ports", []):
        ports.add(int(str(mapping).rsplit(":", 1)[-1].split("/")[0]))
    return ports


@pytest.mark.parametrize("name", LONG_RUNNING)
def test_same_ports(rendered, name):
    """The Service exposes, and the container declares, every port compose reaches it on."""
    ports = addressed_ports(name)
    assert ports, f"compose names no port of {name}"
    container = manifests.main_container(k8s(rendered, name))
    declared = {p["containerPort"] for p in container["ports"]}
    service = manifests.one(rendered["defaults"], "Service", name)
    exposed = {
        p["port"]: manifests.port_number(container, p.get("targetPort", p["port"]))
        for p in service["spec"]["ports"]
    }
    for port in ports:
        assert port in declared, f"{name}: container port {port}"
        assert exposed.get(port) == port, f"{name}: Service port {port} -> container port {port}"


def compose_check(name):
    """compose's healthcheck as ("http", port, path) or ("exec", argv)."""
    test = SERVICES[name]["healthcheck"]["test"]
    if test[0] == "CMD-SHELL":
        return ("exec", ["sh", "-c", test[1]])
    argv = test[1:]
    if argv[0] == "probe":
        return ("http", int(argv[1]), argv[2])
    if argv[0] == "curl":
        url = urlsplit(next(a for a in argv if a.startswith("http")))
        return ("http", url.port, url.path)
    return ("exec", argv)


def k8s_checks(container):
    checks = []
    for kind in ("startupProbe", "readinessProbe", "livenessProbe"):
        probe = container.get(kind)
        if probe and "httpGet" in probe:
            port = manifests.port_number(container, probe["httpGet"]["port"])
            checks.append(("http", port, probe["httpGet"]["path"]))
        elif probe and "exec" in probe:
            checks.append(("exec", probe["exec"]["command"]))
    return checks


# A CronJob has no probes: its health is each run's exit code (compose's loop touches a file).
@pytest.mark.parametrize(
    "name", sorted(n for n in SERVICES if "healthcheck" in SERVICES[n] and n not in SCHEDULED)
)
def test_health_check_is_a_probe(rendered, name):
    """A probe checks exactly what compose's healthcheck checks (same port and path, or command)."""
    assert compose_check(name) in k8s_checks(manifests.main_container(k8s(rendered, name)))


@pytest.mark.parametrize("name", LONG_RUNNING)
def test_probes_hit_documented_endpoints(rendered, name):
    """Every HTTP probe asks an endpoint that docs/architecture.md lists."""
    documented = set(re.findall(r"`(/[a-z-]+)`", (ROOT / "docs/architecture.md").read_text()))
    for check in k8s_checks(manifests.main_container(k8s(rendered, name))):
        if check[0] == "http":
            assert check[2] in documented


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_same_memory_limit(rendered, name):
    """The memory limit is compose's `deploy.resources.limits.memory`."""
    limit = SERVICES[name]["deploy"]["resources"]["limits"]["memory"]
    container = manifests.main_container(k8s(rendered, name))
    k8s_limit = container["resources"]["limits"]["memory"]
    assert manifests.memory_bytes(k8s_limit) == compose.memory_bytes(limit)


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_same_filesystems(rendered, name):
    """Read-only root; compose's tmpfs are emptyDirs and its named volumes claims, same paths."""
    service, doc = SERVICES[name], k8s(rendered, name)
    container = manifests.main_container(doc)
    assert container["securityContext"]["readOnlyRootFilesystem"] is bool(service.get("read_only"))
    volumes = {v["name"]: v for v in manifests.pod_spec(doc).get("volumes", [])}
    claims = {c["metadata"]["name"] for c in doc["spec"].get("volumeClaimTemplates", [])}
    mounts = {m["mountPath"]: m["name"] for m in container.get("volumeMounts", [])}
    tmpfs = service.get("tmpfs") or []
    for path in [tmpfs] if isinstance(tmpfs, str) else tmpfs:
        path = path.split(":")[0]
        assert path in mounts, f"{name}: tmpfs {path} has no mount"
        assert "emptyDir" in volumes[mounts[path]], f"{name}: {path} is not an emptyDir"
    for volume in service.get("volumes", []):
        source, path = volume.split(":")[:2]
        assert path in mounts, f"{name}: volume {path} has no mount"
        if source.startswith((".", "/")):  # a host folder: files from a Secret or ConfigMap
            assert {"secret", "configMap"} & set(volumes[mounts[path]]), f"{name}: {path}"
        else:  # a named volume: a claim
            assert mounts[path] in claims, f"{name}: {path} is not a volume claim"


def image_user(name):
    """compose's `user`, else the USER of the Dockerfile compose builds the image from."""
    if "user" in SERVICES[name]:
        return SERVICES[name]["user"]
    build = SERVICES[name].get("build")
    if not build:
        return None
    dockerfile = ROOT / build["context"] / build.get("dockerfile", "Dockerfile")
    users = re.findall(r"^USER\s+(\S+)", dockerfile.read_text(), re.M)
    return users[-1] if users else None


# nginx's image user is a name (`nginx`, uid 101 in the manifest): nothing here to compare.
NUMERIC_USERS = sorted(n for n in SERVICES if (image_user(n) or "x").split(":")[0].isdigit())


@pytest.mark.parametrize("name", NUMERIC_USERS)
def test_same_user(rendered, name):
    """Pods run as compose's numeric user (or the image's), so file ownership is the same."""
    user = image_user(name)
    doc = k8s(rendered, name)
    context = {**manifests.pod_spec(doc).get("securityContext", {})}
    context.update(manifests.main_container(doc).get("securityContext", {}))
    uid, _, gid = user.partition(":")
    assert context["runAsUser"] == int(uid)
    if gid:
        assert context["runAsGroup"] == int(gid)


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_same_hardening(rendered, name):
    """compose's cap_drop ALL and no-new-privileges hold in the container's securityContext."""
    service = SERVICES[name]
    context = manifests.main_container(k8s(rendered, name))["securityContext"]
    if "ALL" in service.get("cap_drop", []):
        assert "ALL" in context["capabilities"]["drop"]
    if "no-new-privileges:true" in service.get("security_opt", []):
        assert context["allowPrivilegeEscalation"] is False


@pytest.mark.parametrize("name", sorted(n for n in SERVICES if "stop_grace_period" in SERVICES[n]))
def test_stop_grace_at_least_compose(rendered, name):
    """Where compose gives a stop grace period, Kubernetes gives at least as much."""
    grace = manifests.pod_spec(k8s(rendered, name))["terminationGracePeriodSeconds"]
    assert grace >= compose.seconds(SERVICES[name]["stop_grace_period"])


@pytest.mark.parametrize("overlay", manifests.OVERLAYS)
def test_secret_keys_are_env_example_names(rendered, overlay):
    """The Secret's keys are .env.example's "Secrets" section, as is secrets.env.example."""
    secret = manifests.generated(rendered[overlay], "Secret", "chat-secrets")
    names = compose.secret_names()
    assert sorted(secret["data"]) == sorted(names)
    example = ROOT / "k8s/overlays" / overlay / "secrets.env.example"
    keys = [ln.split("=")[0] for ln in example.read_text().splitlines() if re.match(r"^\w+=", ln)]
    assert keys == names


@pytest.mark.parametrize("overlay", manifests.OVERLAYS)
def test_one_tag_for_both_images(rendered, overlay):
    """chat and nginx run the same build (compose's CHAT_TAG), pinned rather than `latest`."""
    images = {
        c["image"] for d in manifests.workloads(rendered[overlay]) for c in manifests.containers(d)
    }
    tags = {i.rpartition(":")[2] for i in images if "/chatstack/" in i}
    assert len(tags) == 1 and "latest" not in tags, images
