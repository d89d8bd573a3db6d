"""The data tier (issue 12): every overlay keeps the names the app reaches Redis and Postgres by;
production has no single Redis or Postgres pod to lose: Redis with Sentinel failover
(components/redis-ha, mirroring compose.ha.yaml) and Postgres as a CloudNativePG Cluster
(components/postgres-cnpg) or a managed database (components/postgres-managed, the documented
one-line switch); staging keeps one pod of each."""

import base64
import re
from urllib.parse import urlsplit

import pytest
import yaml

from tests.k8s import compose, manifests

ROOT = manifests.ROOT
HA = compose.merged_services(ROOT / "compose.yaml", ROOT / "compose.ha.yaml")
SCRIPT = ROOT / "redis/redis-ha.sh"
RENDERS = (
    "staging",
    "production",
    "production-loadbalancer",
    "production-cert-manager",
    "production-managed-db",
)
PRODUCTION = tuple(r for r in RENDERS if r.startswith("production"))
CNPG = tuple(r for r in PRODUCTION if r != "production-managed-db")
# The names the components reach each other by (compose's service names).
CONTRACT = ("nginx", "web", "ws", "migrate", "redis", "postgres")
APPS = ("web", "ws", "migrate")
# Variables of the redis-ha members that only Kubernetes has, and why: compose's members meet by
# IP address (redis/redis-ha.sh), pods by their stable name under the headless Service.
K8S_ONLY = {"POD_NAME", "REDIS_ANNOUNCE_HOST"}
# Values that name hosts: compose's services there, the pods' stable names here.
HOST_VALUED = {"REDIS_INITIAL_PRIMARY", "REDIS_SENTINELS", "REDIS_ANNOUNCE_HOST"}
# The labels CloudNativePG 1.30 puts on the instance pods and selects its postgres-rw Service by
# (pkg/utils/labels_annotations.go: ClusterLabelName, ClusterInstanceRoleLabelName; its
# pkg/specs/services.go), and the name of the instance's PostgreSQL port (pkg/specs/pods.go).
CNPG_CLUSTER_LABEL = "cnpg.io/cluster"
CNPG_ROLE_LABEL = "cnpg.io/instanceRole"
CNPG_PORT = ("postgresql", 5432)


def script_default(variable):
    """The default redis-ha.sh gives a variable (`${VARIABLE:-default}`)."""
    return re.search(rf"\$\{{{variable}:-([^}}]+)\}}", SCRIPT.read_text())[1]


def ha_members(role):
    """{name: service} of compose.ha.yaml's members running `redis-ha.sh ROLE`."""
    return {
        name: service
        for name, service in HA.items()
        if (service.get("command") or [""])[-1] == role
        and any(str(v).startswith("./redis/redis-ha.sh:") for v in service.get("volumes", []))
    }


def script_target(service):
    """Where compose mounts redis/redis-ha.sh in the service."""
    (target,) = [
        v.split(":")[1] for v in service["volumes"] if str(v).startswith("./redis/redis-ha.sh:")
    ]
    return target


def redis_ha(docs):
    """The StatefulSet `redis` and its containers {role: container} (server, sentinel)."""
    sts = manifests.one(docs, "StatefulSet", "redis")
    by_name = {c["name"]: c for c in manifests.pod_spec(sts)["containers"]}
    assert set(by_name) == {"redis", "sentinel"}, sorted(by_name)
    return sts, {"server": by_name["redis"], "sentinel": by_name["sentinel"]}


def pod_names(sts):
    return [f"{sts['metadata']['name']}-{i}" for i in range(sts["spec"]["replicas"])]


def addresses(value):
    """host:port entries of a comma list, as (host, port)."""
    return [(a.rpartition(":")[0], int(a.rpartition(":")[2])) for a in value.split(",") if a]


def overlay_components(overlay):
    path = ROOT / "k8s/overlays" / overlay / "kustomization.yaml"
    return [c.rsplit("/", 1)[-1] for c in yaml.safe_load(path.read_text()).get("components", [])]


def decoded(secret):
    return {k: base64.b64decode(v).decode() for k, v in secret.get("data", {}).items()}


def test_compose_ha_is_read():
    """compose.ha.yaml merged over compose.yaml: two data nodes and three Sentinels running the
    script, and the app on Sentinels (no vacuous pass below)."""
    assert len(ha_members("server")) == 2 and len(ha_members("sentinel")) == 3
    web = compose.environment(HA["web"])
    assert web["REDIS_URL"] == "" and len(addresses(web["REDIS_SENTINELS"])) == 3


# -- the name contract -----------------------------------------------------------------------


@pytest.mark.parametrize("render", RENDERS)
@pytest.mark.parametrize("name", CONTRACT)
def test_name_contract(rendered, render, name):
    """Every render runs each compose name: migrate as a Job; the others as a Service and, behind
    it, a workload of that name it selects, or for `postgres` the CloudNativePG Cluster's primary
    or the managed database's host."""
    docs = rendered[render]
    if name in compose.one_shot():
        assert manifests.workload(docs, name)["kind"] == "Job"
        return
    service = manifests.one(docs, "Service", name)
    if name == "postgres" and service["spec"].get("type") == "ExternalName":
        assert render == "production-managed-db"
        assert re.fullmatch(r"[a-z0-9.-]+", service["spec"]["externalName"])
        return
    if name == "postgres" and manifests.find(docs, "Cluster", "postgres"):
        assert service["spec"]["selector"] == {
            CNPG_CLUSTER_LABEL: "postgres",
            CNPG_ROLE_LABEL: "primary",
        }
        return
    workload = manifests.workload(docs, name)
    labels = workload["spec"]["template"]["metadata"]["labels"]
    assert manifests.selects({"matchLabels": service["spec"]["selector"]}, labels)


@pytest.mark.parametrize("render", RENDERS)
@pytest.mark.parametrize("name", APPS)
def test_apps_reach_the_data_tier_by_its_names(rendered, render, name):
    """DATABASE_URL is compose's everywhere (host `postgres`, a Service on its port); exactly
    one Redis setting is non-empty (the settings refuse two): REDIS_URL to the Service `redis`,
    or REDIS_SENTINELS where production runs Sentinels."""
    docs = rendered[render]
    for container in manifests.containers(manifests.workload(docs, name)):
        env = manifests.environment(docs, container)
        assert env["DATABASE_URL"] == compose.environment(compose.services()[name])["DATABASE_URL"]
        url = urlsplit(env["DATABASE_URL"])
        service = manifests.one(docs, "Service", url.hostname)
        assert url.port in [p["port"] for p in service["spec"]["ports"]]
        chosen = [k for k in ("REDIS_URL", "REDIS_URLS", "REDIS_SENTINELS") if env.get(k)]
        expected = "REDIS_SENTINELS" if render in PRODUCTION else "REDIS_URL"
        assert chosen == [expected], f"{name}/{container['name']}: {chosen}"
        if expected == "REDIS_URL":
            redis_url = urlsplit(env["REDIS_URL"])
            assert redis_url.hostname == "redis"
            ports = manifests.one(docs, "Service", "redis")["spec"]["ports"]
            assert redis_url.port in [p["port"] for p in ports]


# -- no single pod in production, single pods in staging ------------------------------------


@pytest.mark.parametrize("render", PRODUCTION)
def test_production_has_no_single_pod_data_tier(rendered, render):
    """Redis runs as three pods (primary, two replicas, three Sentinels); Postgres as three
    CloudNativePG instances or outside the cluster; neither single-pod workload is left."""
    docs = rendered[render]
    assert manifests.find(docs, "Deployment", "redis") == []
    assert manifests.find(docs, "StatefulSet", "postgres") == []
    sts, _ = redis_ha(docs)
    assert sts["spec"]["replicas"] >= 3
    clusters = manifests.find(docs, "Cluster", "postgres")
    if render == "production-managed-db":
        assert clusters == []
        assert manifests.one(docs, "Service", "postgres")["spec"]["type"] == "ExternalName"
    else:
        assert clusters[0]["spec"]["instances"] >= 3


def test_staging_keeps_single_pods(rendered):
    """Staging stays as compose.yaml: one Redis (Recreate, never two) and one Postgres pod, no
    Sentinels, no operator objects."""
    docs = rendered["staging"]
    redis = manifests.one(docs, "Deployment", "redis")
    assert redis["spec"]["replicas"] == 1 and redis["spec"]["strategy"]["type"] == "Recreate"
    assert manifests.one(docs, "StatefulSet", "postgres")["spec"]["replicas"] == 1
    assert not [d for d in docs if d["apiVersion"].startswith("postgresql.cnpg.io/")]
    assert manifests.find(docs, "StatefulSet", "redis") == []
    assert not {"redis-ha", "postgres-cnpg", "postgres-managed"} & set(
        overlay_components("staging")
    )


def test_production_switches_the_database_in_one_line():
    """production lists postgres-cnpg and, commented out right below, postgres-managed: the
    switch k8s/README.md documents (conftest renders it as production-managed-db)."""
    text = (ROOT / "k8s/overlays/production/kustomization.yaml").read_text()
    lines = text.splitlines()
    cnpg = lines.index("  - ../../components/postgres-cnpg")
    assert lines[cnpg + 1] == "  # - ../../components/postgres-managed"
    assert overlay_components("production").count("redis-ha") == 1


# -- components/redis-ha mirrors compose.ha.yaml --------------------------------------------


@pytest.mark.parametrize("render", PRODUCTION)
def test_redis_ha_runs_the_compose_script(rendered, render):
    """Both containers run compose's command for their role, with redis/redis-ha.sh byte for
    byte from the generated ConfigMap, mounted where compose mounts it."""
    docs = rendered[render]
    sts, roles = redis_ha(docs)
    config_map = manifests.generated(docs, "ConfigMap", "redis-ha")
    assert config_map["data"]["redis-ha.sh"].encode() == SCRIPT.read_bytes()
    volumes = {v["name"]: v for v in manifests.pod_spec(sts)["volumes"]}
    for role, container in roles.items():
        (service, *_) = ha_members(role).values()
        assert container["args"] == service["command"] and "command" not in container
        (mount,) = [m for m in container["volumeMounts"] if m.get("subPath") == "redis-ha.sh"]
        assert mount["mountPath"] == script_target(service) and mount.get("readOnly") is True
        assert volumes[mount["name"]]["configMap"]["name"] == config_map["metadata"]["name"]


@pytest.mark.parametrize("render", PRODUCTION)
def test_redis_ha_same_image_user_and_limits(rendered, render):
    """compose.ha.yaml's image for every member, its user 999:999, read-only root, no
    capabilities, and each role's memory limit."""
    sts, roles = redis_ha(rendered[render])
    pod = manifests.pod_spec(sts)["securityContext"]
    for role, container in roles.items():
        for service in ha_members(role).values():
            assert manifests.compose_name(container["image"]) == service["image"]
            uid, _, gid = service["user"].partition(":")
            assert (pod["runAsUser"], pod["runAsGroup"]) == (int(uid), int(gid))
            assert container["securityContext"]["readOnlyRootFilesystem"] is service["read_only"]
            assert "ALL" in service["cap_drop"]
            assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
            limit = service["deploy"]["resources"]["limits"]["memory"]
            k8s_limit = container["resources"]["limits"]["memory"]
            assert manifests.memory_bytes(k8s_limit) == compose.memory_bytes(limit)


@pytest.mark.parametrize("render", PRODUCTION)
def test_redis_ha_same_settings(rendered, render):
    """Each container sees compose.ha.yaml's variables for its role with compose's values (the
    master name, the Sentinel timings, the password from the Secret), apart from host names."""
    docs = rendered[render]
    _, roles = redis_ha(docs)
    for role, container in roles.items():
        env = manifests.environment(docs, container)
        for name, service in ha_members(role).items():
            expected = compose.environment(service)
            assert sorted(set(expected) - set(env)) == [], f"{name}: compose sets, k8s does not"
            assert sorted(set(env) - set(expected) - K8S_ONLY) == [], f"{name}: k8s only"
            same = {k: v for k, v in expected.items() if k not in HOST_VALUED}
            assert {k: env[k] for k in same} == same, name
        assert env["REDIS_MASTER_NAME"] == "chat"
        assert env["SENTINEL_DOWN_AFTER_MS"] == "3000"  # k8s/README.md's failover promise
        assert env["REDIS_PASSWORD"] == env["REDISCLI_AUTH"] == "$(REDIS_PASSWORD)"


@pytest.mark.parametrize("render", PRODUCTION)
def test_redis_ha_hosts_are_the_pods_stable_names(rendered, render):
    """As many Sentinels as compose's, one per pod, each listed by the pod's name under the
    headless Service; every member announces its own such name; the first primary is pod 0."""
    docs = rendered[render]
    sts, roles = redis_ha(docs)
    headless = sts["spec"]["serviceName"]
    sentinel_port = script_default("SENTINEL_PORT")
    redis_port = script_default("REDIS_PORT")
    compose_sentinels = addresses(
        compose.environment(next(iter(ha_members("sentinel").values())))["REDIS_SENTINELS"]
    )
    assert len(compose_sentinels) == len(ha_members("sentinel")) == 3
    pods = [f"{pod}.{headless}" for pod in pod_names(sts)]
    for container in roles.values():
        env = manifests.environment(docs, container)
        assert addresses(env["REDIS_SENTINELS"]) == [(p, int(sentinel_port)) for p in pods]
        assert len(addresses(env["REDIS_SENTINELS"])) == len(compose_sentinels)
        assert env["REDIS_INITIAL_PRIMARY"] in (pods[0], f"{pods[0]}:{redis_port}")
        assert env["POD_NAME"] == "<fieldRef:metadata.name>"
        assert env["REDIS_ANNOUNCE_HOST"] == f"$(POD_NAME).{headless}"
        names = [e["name"] for e in container["env"]]
        assert names.index("POD_NAME") < names.index("REDIS_ANNOUNCE_HOST")  # $(VAR) order
    ports = {c["ports"][0]["containerPort"] for c in roles.values()}
    assert ports == {int(redis_port), int(sentinel_port)}


@pytest.mark.parametrize("render", PRODUCTION)
def test_redis_ha_probes_are_compose_health_checks(rendered, render):
    """Readiness is compose.ha.yaml's health check of each role (redis-cli ping, authenticated
    by REDISCLI_AUTH from the Secret); liveness checks the role's port."""
    _, roles = redis_ha(rendered[render])
    for role, container in roles.items():
        for service in ha_members(role).values():
            test = service["healthcheck"]["test"]
            assert test[0] == "CMD-SHELL"
            assert container["readinessProbe"]["exec"]["command"] == ["sh", "-c", test[1]]
        port = manifests.port_number(container, container["livenessProbe"]["tcpSocket"]["port"])
        assert port == container["ports"][0]["containerPort"]


@pytest.mark.parametrize("render", PRODUCTION)
def test_redis_ha_filesystems(rendered, render):
    """Each container writes only to its own emptyDir at the script's /data (compose's tmpfs):
    the data node's working directory, the Sentinel's sentinel.conf."""
    sts, roles = redis_ha(rendered[render])
    volumes = {v["name"]: v for v in manifests.pod_spec(sts)["volumes"]}
    data_dir = script_default("REDIS_HA_DIR")
    used = []
    for role, container in roles.items():
        (mount,) = [m for m in container["volumeMounts"] if m["mountPath"] == data_dir]
        assert "emptyDir" in volumes[mount["name"]], role
        used.append(mount["name"])
        for service in ha_members(role).values():
            assert any(t.split(":")[0] == data_dir for t in service.get("tmpfs") or []), role
    assert len(set(used)) == 2


@pytest.mark.parametrize("render", PRODUCTION)
@pytest.mark.parametrize("name", APPS)
def test_app_asks_the_sentinels(rendered, render, name):
    """web, ws and migrate (and their init containers) get compose.ha.yaml's app variables:
    REDIS_URL empty, the same master name as the Sentinels watch, REDIS_PASSWORD from the
    Secret; REDIS_SENTINELS on the Sentinels' port, at the Service `redis`, whose port leads to
    the sentinel containers (compose lists the three Sentinel services instead)."""
    docs = rendered[render]
    sts, roles = redis_ha(docs)
    expected = compose.environment(HA[name])
    server_env = manifests.environment(docs, roles["sentinel"])
    for container in manifests.containers(manifests.workload(docs, name)):
        env = manifests.environment(docs, container)
        for key in ("REDIS_URL", "REDIS_MASTER_NAME", "REDIS_PASSWORD"):
            assert env[key] == expected[key], f"{container['name']}: {key}"
        assert env["REDIS_MASTER_NAME"] == server_env["REDIS_MASTER_NAME"]
        compose_ports = {p for _, p in addresses(expected["REDIS_SENTINELS"])}
        for host, port in addresses(env["REDIS_SENTINELS"]):
            assert port in compose_ports
            service = manifests.one(docs, "Service", host)
            (entry,) = [p for p in service["spec"]["ports"] if p["port"] == port]
            assert manifests.port_number(roles["sentinel"], entry["targetPort"]) == port
            labels = sts["spec"]["template"]["metadata"]["labels"]
            assert manifests.selects({"matchLabels": service["spec"]["selector"]}, labels)


@pytest.mark.parametrize("render", PRODUCTION)
def test_redis_services(rendered, render):
    """`redis` serves the Sentinels only (the data port behind one address would reach replicas,
    which refuse writes); the headless Service gives each pod its name, published before the pod
    is ready (a starting replica must find the primary), and governs the StatefulSet."""
    docs = rendered[render]
    sts, roles = redis_ha(docs)
    labels = sts["spec"]["template"]["metadata"]["labels"]
    redis = manifests.one(docs, "Service", "redis")["spec"]
    assert [(p["port"], p["targetPort"]) for p in redis["ports"]] == [(26379, "sentinel")]
    assert redis.get("clusterIP") != "None"
    headless = manifests.one(docs, "Service", sts["spec"]["serviceName"])["spec"]
    assert headless["clusterIP"] == "None" and headless["publishNotReadyAddresses"] is True
    assert manifests.selects({"matchLabels": headless["selector"]}, labels)
    by_port_name = {c["ports"][0]["name"]: c["ports"][0]["containerPort"] for c in roles.values()}
    assert {(p["port"], by_port_name.get(p["targetPort"])) for p in headless["ports"]} == {
        (6379, 6379),
        (26379, 26379),
    }


@pytest.mark.parametrize("render", PRODUCTION)
def test_redis_survives_one_pod_or_node(rendered, render):
    """The budget lets a drain take one pod; the pods stand on different nodes as a rule; so
    after losing any one pod or node the Sentinels left still make both the quorum and the
    majority a failover needs."""
    docs = rendered[render]
    sts, roles = redis_ha(docs)
    labels = sts["spec"]["template"]["metadata"]["labels"]
    (pdb,) = [
        p
        for p in manifests.find(docs, "PodDisruptionBudget")
        if manifests.selects(p["spec"]["selector"], labels)
    ]
    assert pdb["spec"]["maxUnavailable"] == 1
    spec = manifests.pod_spec(sts)
    (rule,) = spec["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert rule["topologyKey"] == "kubernetes.io/hostname"
    assert manifests.selects(rule["labelSelector"], labels)
    assert sts["spec"]["podManagementPolicy"] == "Parallel"
    env = manifests.environment(docs, roles["sentinel"])
    quorum = int(env.get("SENTINEL_QUORUM", script_default("SENTINEL_QUORUM")))
    replicas = sts["spec"]["replicas"]
    left = replicas - pdb["spec"]["maxUnavailable"]
    assert left >= quorum and left >= replicas // 2 + 1


# -- components/postgres-cnpg ----------------------------------------------------------------


@pytest.mark.parametrize("render", CNPG)
def test_cnpg_cluster(rendered, render):
    """Three instances on three nodes, compose's Postgres major version in a pinned image that
    carries barman-cloud, the database and owner `chat`, storage and resources set, the
    operator's disruption budgets on, no superuser access."""
    docs = rendered[render]
    spec = manifests.one(docs, "Cluster", "postgres")["spec"]
    assert spec["instances"] == 3
    affinity = spec["affinity"]
    assert affinity["enablePodAntiAffinity"] is True
    assert affinity["podAntiAffinityType"] == "required"
    assert affinity["topologyKey"] == "kubernetes.io/hostname"
    major = compose.services()["postgres"]["image"].split(":")[1].split("-")[0]
    image = re.fullmatch(
        r"ghcr\.io/cloudnative-pg/postgresql:(\d+)\.(\d+)-system-\w+", spec["imageName"]
    )
    assert image and image[1] == major, spec["imageName"]
    initdb = spec["bootstrap"]["initdb"]
    url = urlsplit(compose.environment(compose.services()["web"])["DATABASE_URL"])
    assert (initdb["database"], initdb["owner"]) == (url.path.lstrip("/"), url.username)
    assert manifests.memory_bytes(spec["storage"]["size"]) >= 10 * 2**30
    resources = spec["resources"]
    assert {"cpu", "memory"} <= set(resources["requests"]) & set(resources["limits"])
    assert spec.get("enablePDB", True) is True and spec.get("enableSuperuserAccess") is False


@pytest.mark.parametrize("render", CNPG)
def test_cnpg_owner_password_is_postgres_password(rendered, render, secret_values):
    """The owner's credentials are a kubernetes.io/basic-auth Secret, as CloudNativePG takes
    them: username the owner, password chat-secrets' POSTGRES_PASSWORD (the one DATABASE_URL
    is built from), so secrets.env stays the only place it is written."""
    docs = rendered[render]
    initdb = manifests.one(docs, "Cluster", "postgres")["spec"]["bootstrap"]["initdb"]
    secret = manifests.one(docs, "Secret", initdb["secret"]["name"])
    assert secret["type"] == "kubernetes.io/basic-auth"
    chat = decoded(manifests.generated(docs, "Secret", "chat-secrets"))
    assert decoded(secret) == {"username": initdb["owner"], "password": chat["POSTGRES_PASSWORD"]}
    assert chat["POSTGRES_PASSWORD"] == secret_values["production"]["POSTGRES_PASSWORD"]


@pytest.mark.parametrize("render", CNPG)
def test_postgres_service_is_the_primary(rendered, render):
    """The Service `postgres` selects the Cluster's primary by the labels CloudNativePG 1.30
    sets (the selector of its own postgres-rw), on the instance's PostgreSQL port, behind a
    virtual IP that follows a failover at once."""
    docs = rendered[render]
    service = manifests.one(docs, "Service", "postgres")["spec"]
    assert service["selector"] == {CNPG_CLUSTER_LABEL: "postgres", CNPG_ROLE_LABEL: "primary"}
    (port,) = service["ports"]
    assert (port["targetPort"], port["port"]) == CNPG_PORT
    assert "clusterIP" not in service and service.get("type", "ClusterIP") == "ClusterIP"


@pytest.mark.parametrize("render", CNPG)
def test_cnpg_backups(rendered, render):
    """WAL archiving and base backups go to the object store the overlay names (backup.yaml)
    with the key of the Secret it names; a daily ScheduledBackup of this Cluster, a first one
    at once; a retention."""
    docs = rendered[render]
    backup = manifests.one(docs, "Cluster", "postgres")["spec"]["backup"]
    store = backup["barmanObjectStore"]
    assert re.fullmatch(r"(s3|gs|https?)://[^/]+/.+", store["destinationPath"])
    credentials = store["s3Credentials"]
    assert {credentials[k]["name"] for k in ("accessKeyId", "secretAccessKey")} == {
        "postgres-backup"
    }
    assert re.fullmatch(r"[1-9]\d*[dwm]", backup["retentionPolicy"])
    (scheduled,) = manifests.find(docs, "ScheduledBackup")
    spec = scheduled["spec"]
    assert spec["cluster"] == {"name": "postgres"}
    assert spec["method"] == "barmanObjectStore" and spec["immediate"] is True
    fields = spec["schedule"].split()  # seconds minutes hours day month weekday
    assert fields[2].isdigit() and fields[3:] == ["*", "*", "*"], spec["schedule"]  # daily


def test_backup_location_has_one_place(rendered):
    """The component names no object store: only the overlay's backup.yaml does, and the
    operator's schema requires it, so an overlay that forgets it fails validation."""
    component = yaml.safe_load((ROOT / "k8s/components/postgres-cnpg/cluster.yaml").read_text())
    store = component["spec"]["backup"]["barmanObjectStore"]
    assert not {"destinationPath", "endpointURL", "s3Credentials"} & set(store)
    errors = manifests.crd_schema_errors({**component, "metadata": {"name": "postgres"}})
    assert errors and all("destinationPath" in e for e in errors), errors
    patch = yaml.safe_load((ROOT / "k8s/overlays/production/backup.yaml").read_text())
    cluster = manifests.one(rendered["production"], "Cluster", "postgres")
    store = cluster["spec"]["backup"]["barmanObjectStore"]
    for op in patch:
        assert store[op["path"].rsplit("/", 1)[1]] == op["value"]


@pytest.mark.parametrize("render", CNPG)
def test_postgres_monitoring_matches_the_monitoring_component(rendered, render):
    """Like compose's Prometheus, components/monitoring scrapes web and ws only: the Cluster asks
    the operator for no PodMonitor of its own (which would also need the Prometheus CRDs)."""
    docs = rendered[render]
    spec = manifests.one(docs, "Cluster", "postgres")["spec"]
    assert not spec.get("monitoring", {}).get("enablePodMonitor", False)
    selectors = [m["spec"]["selector"] for m in manifests.find(docs, "PodMonitor")]
    assert [s["matchLabels"]["app.kubernetes.io/name"] for s in selectors] == ["web", "ws"]
    assert not any("cnpg.io/cluster" in s.get("matchLabels", {}) for s in selectors)


# -- components/postgres-managed ---------------------------------------------------------------


def test_managed_database(rendered):
    """The managed switch: no Postgres pods or operator objects, `postgres` an alias of the host
    written once in components/postgres-managed/service.yaml, and the apps' NetworkPolicies
    open to port 5432 outside the cluster (test_network_policy checks the flows)."""
    docs = rendered["production-managed-db"]
    assert not [d for d in docs if d["apiVersion"].startswith("postgresql.cnpg.io/")]
    assert manifests.find(docs, "StatefulSet", "postgres") == []
    assert manifests.find(docs, "Secret", "postgres-owner") == []
    source = yaml.safe_load((ROOT / "k8s/components/postgres-managed/service.yaml").read_text())
    service = manifests.one(docs, "Service", "postgres")["spec"]
    assert service["externalName"] == source["spec"]["externalName"]
    assert "selector" not in service and "clusterIP" not in service
    host = source["spec"]["externalName"]
    files = [p for p in ROOT.glob("k8s/**/*.yaml") if host in p.read_text()]
    assert files == [ROOT / "k8s/components/postgres-managed/service.yaml"]


@pytest.mark.parametrize("render", RENDERS)
def test_third_party_images_are_pinned(rendered, render):
    """Images not built here (Redis, Postgres, the Cluster's) name a version, never `latest`;
    the redis-ha members use the base's Redis image, so both Redis layouts upgrade together."""
    docs = rendered[render]
    images = [c["image"] for d in manifests.workloads(docs) for c in manifests.containers(d)]
    images += [c["spec"]["imageName"] for c in manifests.find(docs, "Cluster")]
    others = [i for i in images if "chatstack/" not in i]
    assert others
    for image in others:
        tag = image.split("@", 1)[0].rpartition(":")[2]  # a digest pins the build, not the release
        assert ":" in image and tag != "latest" and re.match(r"\d", tag), image
    base_redis = manifests.main_container(manifests.workload(rendered["base"], "redis"))["image"]
    assert {i for i in images if "/redis:" in f"/{i}"} == {base_redis}
