"""Policies over the rendered objects: probes, resources, the restricted Pod Security Standard,
labels, production's availability objects, secrets, and nginx's configuration."""

import base64
import json
import re
import subprocess

import pytest
import yaml

from tests.k8s import compose, manifests

ROOT = manifests.ROOT
RENDERS = (
    "staging",
    "production",
    "production-loadbalancer",
    "production-cert-manager",
    "production-managed-db",
)
# Secrets that are derived, in the render, from chat-secrets and nothing else (their tests:
# test_data_tier.py): CloudNativePG's basic-auth form of the database owner's password.
DERIVED_SECRETS = {"postgres-owner"}
# Literal keys a secretGenerator may have: names, never secret values.
NOT_SECRET_LITERALS = {"username"}
# Volume types the restricted Pod Security Standard allows.
RESTRICTED_VOLUMES = {
    "configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim",
    "projected", "secret",
}  # fmt: skip


def all_containers(docs):
    for doc in manifests.workloads(docs):
        for container in manifests.containers(doc):
            yield doc, container


@pytest.mark.parametrize("render", RENDERS)
def test_long_running_containers_have_probes(rendered, render):
    """Every container of a Deployment or StatefulSet has readiness and liveness probes; the
    slow starters (Django under uWSGI or Daphne, Postgres) a startup probe as well. Init
    containers, the migrate Job and the prune CronJob run to completion: their exit code is
    their health."""
    for doc in manifests.workloads(rendered[render]):
        if doc["kind"] in ("Job", "CronJob"):
            continue
        for container in manifests.pod_spec(doc)["containers"]:
            where = f"{doc['metadata']['name']}/{container['name']}"
            assert "readinessProbe" in container and "livenessProbe" in container, where
            if doc["metadata"]["name"] in ("web", "ws", "postgres"):
                assert "startupProbe" in container, where


@pytest.mark.parametrize("render", RENDERS)
def test_every_container_has_requests_and_limits(rendered, render):
    """Every container, init and Job ones included, requests and limits CPU and memory."""
    for _, container in all_containers(rendered[render]):
        resources = container.get("resources", {})
        for kind in ("requests", "limits"):
            assert {"cpu", "memory"} <= set(resources.get(kind, {})), container["name"]
        requested = manifests.memory_bytes(resources["requests"]["memory"])
        assert requested <= manifests.memory_bytes(resources["limits"]["memory"])


@pytest.mark.parametrize("render", RENDERS)
def test_restricted_pod_security(rendered, render):
    """Every pod meets the restricted Pod Security Standard, and every root filesystem is
    read-only (compose's read_only)."""
    for doc in manifests.workloads(rendered[render]):
        spec = manifests.pod_spec(doc)
        pod = spec.get("securityContext", {})
        for flag in ("hostNetwork", "hostPID", "hostIPC"):
            assert not spec.get(flag), flag
        for volume in spec.get("volumes", []):
            assert set(volume) - {"name"} <= RESTRICTED_VOLUMES, volume
        for container in manifests.containers(doc):
            where = f"{doc['metadata']['name']}/{container['name']}"
            ctx = {**pod, **container.get("securityContext", {})}
            assert ctx.get("runAsNonRoot") is True, where
            assert ctx.get("runAsUser", 1) != 0, where
            assert ctx.get("allowPrivilegeEscalation") is False, where
            assert not ctx.get("privileged"), where
            assert ctx.get("capabilities", {}).get("drop") == ["ALL"], where
            assert set(ctx.get("capabilities", {}).get("add", [])) <= {"NET_BIND_SERVICE"}, where
            assert ctx.get("seccompProfile", {}).get("type") == "RuntimeDefault", where
            assert ctx.get("readOnlyRootFilesystem") is True, where
            assert all("hostPort" not in p for p in container.get("ports", [])), where


@pytest.mark.parametrize("render", RENDERS)
def test_no_service_links_and_no_token(rendered, render):
    """No pod gets Service-link variables (a Service `nginx` would set NGINX_PORT=tcp://...,
    which start-nginx reads as its port) nor an API token it does not use."""
    for doc in manifests.workloads(rendered[render]):
        spec = manifests.pod_spec(doc)
        assert spec.get("enableServiceLinks") is False, doc["metadata"]["name"]
        assert spec.get("automountServiceAccountToken") is False, doc["metadata"]["name"]


@pytest.mark.parametrize("render", RENDERS)
def test_namespace_enforces_restricted(rendered, render):
    """The overlay's namespace enforces (and warns and audits) the restricted standard."""
    (namespace,) = manifests.find(rendered[render], "Namespace")
    labels = namespace["metadata"]["labels"]
    for mode in ("enforce", "warn", "audit"):
        assert labels[f"pod-security.kubernetes.io/{mode}"] == "restricted"
    names = {d["metadata"].get("namespace") for d in rendered[render]} - {None}
    assert names == {namespace["metadata"]["name"]}


def test_overlays_have_their_own_namespaces(rendered):
    """Staging and production never share a namespace."""
    names = [
        manifests.find(rendered[o], "Namespace")[0]["metadata"]["name"] for o in manifests.OVERLAYS
    ]
    assert len(set(names)) == len(names)


@pytest.mark.parametrize("render", RENDERS)
def test_recommended_labels(rendered, render):
    """Every object carries app.kubernetes.io/part-of, managed-by and instance; workloads,
    their pods and Services also name and component."""
    for doc in rendered[render]:
        labels = doc["metadata"].get("labels", {})
        for key in ("part-of", "managed-by", "instance"):
            assert f"app.kubernetes.io/{key}" in labels, f"{doc['kind']}/{doc['metadata']['name']}"
    for doc in [
        *manifests.workloads(rendered[render]),
        *manifests.find(rendered[render], "Service"),
    ]:
        for labels in (
            doc["metadata"]["labels"],
            doc["spec"].get("template", doc)["metadata"]["labels"],
        ):
            assert {"app.kubernetes.io/name", "app.kubernetes.io/component"} <= set(labels)


@pytest.mark.parametrize("render", RENDERS)
def test_named_ports(rendered, render):
    """Every container port and Service port has a name; Services target ports by name."""
    for _, container in all_containers(rendered[render]):
        assert all("name" in p for p in container.get("ports", [])), container["name"]
    for service in manifests.find(rendered[render], "Service"):
        for port in service["spec"]["ports"]:
            assert "name" in port and isinstance(port["targetPort"], str), service["metadata"]


def test_production_runs_two_or_more_of_each_stateless_tier(rendered):
    """nginx has 2+ replicas; web and ws have no fixed count and autoscale from 2."""
    docs = rendered["production"]
    assert manifests.one(docs, "Deployment", "nginx")["spec"]["replicas"] >= 2
    for name in ("web", "ws"):
        assert "replicas" not in manifests.one(docs, "Deployment", name)["spec"]
        assert manifests.one(docs, "HorizontalPodAutoscaler", name)["spec"]["minReplicas"] >= 2


def production_requests(docs, name):
    """Production's memory request for `name`: its workload's main container, or, where the
    workload is gone (components/postgres-cnpg), the CloudNativePG Cluster's."""
    found = [d for d in manifests.workloads(docs) if d["metadata"]["name"] == name]
    if found:
        return manifests.main_container(found[0])["resources"]["requests"]["memory"]
    return manifests.one(docs, "Cluster", name)["spec"]["resources"]["requests"]["memory"]


def test_staging_runs_one_of_each(rendered):
    """Staging: one replica of every workload, smaller requests than production, no budgets."""
    staging, production = rendered["staging"], rendered["production"]
    for doc in manifests.find(staging, "Deployment") + manifests.find(staging, "StatefulSet"):
        assert doc["spec"]["replicas"] == 1, doc["metadata"]["name"]
        mine = manifests.main_container(doc)["resources"]["requests"]["memory"]
        theirs = production_requests(production, doc["metadata"]["name"])
        assert manifests.memory_bytes(mine) < manifests.memory_bytes(theirs)
    for kind in ("PodDisruptionBudget", "HorizontalPodAutoscaler"):
        assert manifests.find(staging, kind) == []


@pytest.mark.parametrize("name", ["nginx", "web", "ws"])
def test_production_disruption_budgets(rendered, name):
    """A PodDisruptionBudget lets a drain take one pod of each stateless tier at a time."""
    docs = rendered["production"]
    pdb = manifests.one(docs, "PodDisruptionBudget", name)
    labels = manifests.one(docs, "Deployment", name)["spec"]["template"]["metadata"]["labels"]
    assert manifests.selects(pdb["spec"]["selector"], labels)
    assert pdb["spec"]["maxUnavailable"] == 1


def gauges():
    """Names of the Gauges services/chat/chat/metrics.py defines."""
    text = (ROOT / "services/chat/chat/metrics.py").read_text()
    return set(re.findall(r'Gauge\(\s*"(\w+)"', text))


def test_production_autoscalers(rendered):
    """web scales on CPU; ws on the service's open-connections gauge, served by the adapter rule
    in k8s/monitoring/prometheus-adapter.yaml under the same name."""
    docs = rendered["production"]
    web = manifests.one(docs, "HorizontalPodAutoscaler", "web")["spec"]
    assert web["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"}
    assert [m["resource"]["name"] for m in web["metrics"] if m["type"] == "Resource"] == ["cpu"]
    ws = manifests.one(docs, "HorizontalPodAutoscaler", "ws")["spec"]
    assert ws["scaleTargetRef"]["name"] == "ws"
    (metric,) = [m["pods"]["metric"]["name"] for m in ws["metrics"] if m["type"] == "Pods"]
    assert metric == "chat_ws_connections" and metric in gauges()
    values = yaml.safe_load((ROOT / "k8s/monitoring/prometheus-adapter.yaml").read_text())
    (rule,) = [r for r in values["rules"]["custom"] if r["name"]["as"] == metric]
    assert rule["seriesQuery"].startswith(metric + "{")
    assert re.search(rule["name"]["matches"], metric)
    assert set(rule["resources"]["overrides"]) == {"namespace", "pod"}


@pytest.mark.parametrize("overlay", manifests.OVERLAYS)
def test_secrets_come_only_from_the_ignored_file(rendered, secret_values, overlay):
    """The Secret holds exactly the generated secrets.env values, nothing but the Secrets derived
    from it carries them, and secrets.env is git-ignored."""
    docs = rendered[overlay]
    secret = manifests.generated(docs, "Secret", "chat-secrets")
    derived = {d["metadata"]["name"] for d in manifests.find(docs, "Secret")} - {
        secret["metadata"]["name"]
    }
    assert derived <= DERIVED_SECRETS
    decoded = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
    assert decoded == secret_values[overlay]
    others = json.dumps([d for d in docs if d["kind"] != "Secret"])
    for value in filter(None, decoded.values()):
        assert value not in others
    ignored = subprocess.run(
        ["git", "check-ignore", "-q", f"k8s/overlays/{overlay}/secrets.env"], cwd=ROOT
    )
    assert ignored.returncode == 0, f"k8s/overlays/{overlay}/secrets.env is not git-ignored"


def test_no_secret_is_written_in_the_repository():
    """No kustomization has secret literals (a user name is not secret), no manifest is a
    Secret, the examples hold only placeholders."""
    literals = 0
    for path in (ROOT / "k8s").rglob("*.yaml"):
        for doc in yaml.safe_load_all(path.read_text()):
            if not isinstance(doc, dict):
                continue
            assert doc.get("kind") != "Secret", path
            for generator in doc.get("secretGenerator", []):
                assert "files" not in generator, path
                keys = {item.split("=", 1)[0] for item in generator.get("literals", [])}
                assert keys <= NOT_SECRET_LITERALS, f"{path}: {sorted(keys)}"
                literals += len(keys)
    assert literals >= 1  # components/postgres-cnpg's username=chat: the check sees one
    secrets = set(compose.secret_names())
    for example in (ROOT / "k8s/overlays").glob("*/secrets.env.example"):
        for line in example.read_text().splitlines():
            name, _, value = line.partition("=")
            if name in secrets:
                assert value == "" or value.startswith("!!!SET"), f"{example}: {name}"


def conf_files():
    return {p.name: p.read_bytes() for p in sorted((ROOT / "nginx/conf").iterdir()) if p.is_file()}


@pytest.mark.parametrize("render", RENDERS)
def test_nginx_config_is_compose_config(rendered, render):
    """The nginx ConfigMap holds nginx/conf/ byte for byte, every file and nothing else, and is
    mounted where start-nginx reads and the image copies it; its hash suffix rolls nginx."""
    docs = rendered[render]
    config_map = manifests.generated(docs, "ConfigMap", "nginx-conf")
    data = {k: v.encode() for k, v in config_map["data"].items()}
    assert data == conf_files()
    nginx = manifests.one(docs, "Deployment", "nginx")
    volumes = {v["name"]: v for v in manifests.pod_spec(nginx)["volumes"]}
    container = manifests.main_container(nginx)
    (mount,) = [m for m in container["volumeMounts"] if "configMap" in volumes[m["name"]]]
    assert volumes[mount["name"]]["configMap"]["name"] == config_map["metadata"]["name"]
    start = (ROOT / "nginx/start-nginx").read_text()
    assert f': "${{NGINX_CONF_DIR:={mount["mountPath"]}}}"' in start
    dockerfile = (ROOT / "nginx/Dockerfile").read_text()
    assert re.search(rf"^COPY \S*conf/ {re.escape(mount['mountPath'])}/?$", dockerfile, re.M)
    assert "NGINX_CONF_DIR" not in manifests.environment(docs, container)


@pytest.mark.parametrize("render", RENDERS)
def test_writable_paths_are_empty_dirs(rendered, render):
    """nginx's NGINX_RUN_DIR (start-nginx's default) is below an emptyDir mount."""
    nginx = manifests.one(rendered[render], "Deployment", "nginx")
    run_dir = re.search(r'NGINX_RUN_DIR:=([^}"]+)', (ROOT / "nginx/start-nginx").read_text())[1]
    volumes = {v["name"]: v for v in manifests.pod_spec(nginx)["volumes"]}
    mounts = manifests.main_container(nginx)["volumeMounts"]
    assert any(
        (run_dir + "/").startswith(m["mountPath"].rstrip("/") + "/")
        and "emptyDir" in volumes[m["name"]]
        for m in mounts
    )


@pytest.mark.parametrize("render", RENDERS)
def test_configuration_changes_roll_the_pods(rendered, render):
    """Pods name the generated ConfigMaps and Secret with their hash suffix, so a change of
    any value is a new pod template (and a rollout)."""
    docs = rendered[render]
    generated = {d["metadata"]["name"] for d in docs if d["kind"] in ("ConfigMap", "Secret")}
    referenced = set(
        re.findall(
            r'"name": "((?:chat-config|chat-secrets|nginx-env|nginx-conf)[^"]*)"',
            json.dumps(manifests.workloads(docs)),
        )
    )
    assert referenced and referenced <= generated
    assert all(re.fullmatch(r"[a-z-]+-[a-z0-9]{10}", name) for name in referenced), referenced
