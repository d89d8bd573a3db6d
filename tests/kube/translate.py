"""Rendered Kubernetes objects -> pods -> `docker run` arguments, as the kubelet would run them.

Pure functions, no Docker: tests/kube/cluster.py runs what these compute. What is translated
and how (k8s/README.md, "What the smoke boot proves and what it does not"):

- workloads: every Deployment, StatefulSet and Job; a CloudNativePG Cluster becomes one Postgres
  pod (substitute_cnpg); replicas as written, else the HorizontalPodAutoscaler's minReplicas
- env and envFrom exactly as the kubelet builds them (envFrom first, then env in order, each
  `value` expanded against what is defined so far), `$(VAR)` in command and args against the
  result; an unresolved reference stays as written, as in Kubernetes, and is reported
- ConfigMap and Secret volumes in the kubelet's layout (..data symlinks, items, defaultMode,
  fsGroup ownership, read-only), emptyDir per pod, volumeClaimTemplates as fresh directories
- securityContext: uid/gid, fsGroup and supplementalGroups, runAsNonRoot (checked), read-only
  root, capabilities, no-new-privileges, seccomp; resource limits

Anything in a pod spec this module does not know fails the boot by name, so a manifest cannot
grow a field the smoke boot silently skips.
"""

import base64
import hashlib
import re
import shlex
from dataclasses import dataclass, field

CLUSTER_DOMAIN = "cluster.local"
_ENV_NAME = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")  # the API server's rule for env names
_REF_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

# Upstream image repositories (any tag) -> the local image that stands in for it: a variable of
# `scripts/airgap-images --print-env`, or a tag that `docker compose build` makes.
STANDINS = {
    "chatstack/chat": "chatstack/chat:latest",
    "chatstack/nginx": "chatstack/nginx:latest",
    "redis": "REDIS_IMAGE",
    "postgres": "POSTGRES_IMAGE",
    "ghcr.io/cloudnative-pg/postgresql": "POSTGRES_IMAGE",
}

# Fields that only the scheduler, the controllers or the API server act on: one Docker engine
# is one node, so they are reported, not translated.
SCHEDULING_FIELDS = {
    "affinity",
    "topologySpreadConstraints",
    "nodeSelector",
    "tolerations",
    "priorityClassName",
    "terminationGracePeriodSeconds",
    "serviceAccountName",
    "schedulerName",
}
POD_FIELDS = SCHEDULING_FIELDS | {
    "containers",
    "initContainers",
    "volumes",
    "securityContext",
    "restartPolicy",
    "enableServiceLinks",
    "automountServiceAccountToken",
    "hostname",
    "subdomain",
    "dnsPolicy",
}
CONTAINER_FIELDS = {
    "name",
    "image",
    "imagePullPolicy",
    "command",
    "args",
    "workingDir",
    "env",
    "envFrom",
    "ports",
    "resources",
    "securityContext",
    "volumeMounts",
    "startupProbe",
    "readinessProbe",
    "livenessProbe",
    "lifecycle",
    "terminationMessagePath",
    "terminationMessagePolicy",
}
POD_SECURITY_FIELDS = {
    "runAsNonRoot",
    "runAsUser",
    "runAsGroup",
    "fsGroup",
    "fsGroupChangePolicy",
    "supplementalGroups",
    "seccompProfile",
    "sysctls",
}
CONTAINER_SECURITY_FIELDS = {
    "runAsNonRoot",
    "runAsUser",
    "runAsGroup",
    "allowPrivilegeEscalation",
    "readOnlyRootFilesystem",
    "capabilities",
    "seccompProfile",
    "privileged",
}


class Untranslatable(AssertionError):
    """Something in the rendered manifests that the harness cannot run as written."""


# -- $(VAR) expansion, as k8s.io/kubernetes third_party/forked/golang/expansion ---------------


def expand(text, lookup, missing=None):
    """`text` with each `$(NAME)` replaced by lookup(NAME); `$$` is a literal `$`; a name that
    lookup does not know (None) stays `$(NAME)`, as the kubelet leaves it, and lands in
    `missing`."""
    out = []
    checkpoint = 0
    cursor = 0
    while cursor < len(text):
        if text[cursor] == "$" and cursor + 1 < len(text):
            out.append(text[checkpoint:cursor])
            rest = text[cursor + 1 :]
            if rest[0] == "$":
                out.append("$")
                advance = 1
            elif rest[0] == "(":
                close = rest.find(")", 1)
                if close == -1:  # an incomplete reference: kept, with its opener
                    out.append("$(")
                    advance = 1
                else:
                    name = rest[1:close]
                    value = lookup(name)
                    if value is None:
                        value = f"$({name})"
                        if missing is not None:
                            missing.append(name)
                    out.append(value)
                    advance = close + 1
            else:
                out.append("$" + rest[0])
                advance = 1
            cursor += advance
            checkpoint = cursor + 1
        cursor += 1
    return "".join(out) + text[checkpoint:]


# -- quantities -------------------------------------------------------------------------------

_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}
_DECIMAL = {"": 1, "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12}


def memory_bytes(quantity):
    """A memory quantity (128Mi, 1G, 1e6 not supported) in bytes."""
    match = re.fullmatch(r"(\d+(?:\.\d+)?)([KMGT]i|[kMGT]?)", str(quantity))
    if not match:
        raise Untranslatable(f"expected a memory quantity such as 256Mi, found {quantity!r}")
    number, unit = match.groups()
    return int(float(number) * (_BINARY.get(unit) or _DECIMAL[unit]))


def millicores(quantity):
    """A cpu quantity ("1", "0.5", "250m") in millicores."""
    text = str(quantity)
    if text.endswith("m"):
        return int(text[:-1])
    return int(float(text) * 1000)


# -- the model --------------------------------------------------------------------------------


@dataclass
class Workload:
    """What makes pods: a rendered Deployment, StatefulSet or Job, or a substitute."""

    kind: str
    name: str
    template: dict  # the pod template (metadata + spec)
    replicas: int
    service_name: str | None = None  # StatefulSet: the governing Service (pod DNS names)
    claims: list = field(default_factory=list)  # StatefulSet volumeClaimTemplates
    pod_names: list = field(default_factory=list)
    source: dict | None = None  # the rendered object


@dataclass
class Pod:
    """One pod of a workload, as the controllers would create it."""

    name: str
    workload: Workload
    labels: dict
    annotations: dict
    spec: dict
    namespace: str
    uid: str
    hostname: str
    subdomain: str | None = None

    @property
    def restart_policy(self):
        return self.spec.get("restartPolicy", "Always")

    def containers(self, init=True):
        return (self.spec.get("initContainers", []) if init else []) + self.spec["containers"]


def _pod_template_hash(template):
    return hashlib.sha256(repr(template).encode()).hexdigest()[:10]


def _suffix(seed):
    # Five characters of the controllers' alphabet, derived from the name (stable per render).
    alphabet = "bcdfghjklmnpqrstvwxz2456789"
    digest = hashlib.sha256(seed.encode()).digest()
    return "".join(alphabet[b % len(alphabet)] for b in digest[:5])


def find(docs, kind, name=None):
    return [d for d in docs if d["kind"] == kind and name in (None, d["metadata"]["name"])]


def one(docs, kind, name):
    found = find(docs, kind, name)
    if len(found) != 1:
        raise Untranslatable(f"expected one {kind} named {name} in the render, found {len(found)}")
    return found[0]


def hpa_min_replicas(docs, kind, name):
    for hpa in find(docs, "HorizontalPodAutoscaler"):
        ref = hpa["spec"]["scaleTargetRef"]
        if ref["kind"] == kind and ref["name"] == name:
            return hpa["spec"].get("minReplicas", 1), hpa["metadata"]["name"]
    return None, None


def workloads(docs, notes):
    """Every Deployment, StatefulSet and Job of the render as a Workload (+ substitutes)."""
    found = []
    for doc in docs:
        kind, name, spec = doc["kind"], doc["metadata"]["name"], doc.get("spec", {})
        if kind == "Deployment":
            replicas = spec.get("replicas")
            if replicas is None:
                replicas, hpa = hpa_min_replicas(docs, kind, name)
                if replicas is None:
                    replicas = 1
                    notes.append(f"Deployment {name}: 1 replica (no replicas, no autoscaler)")
                else:
                    notes.append(
                        f"Deployment {name}: {replicas} replicas, the minReplicas of its "
                        f"HorizontalPodAutoscaler {hpa} (the Deployment sets none)"
                    )
            found.append(Workload(kind, name, spec["template"], replicas, source=doc))
        elif kind == "StatefulSet":
            found.append(
                Workload(
                    kind,
                    name,
                    spec["template"],
                    spec.get("replicas", 1),
                    service_name=spec.get("serviceName"),
                    claims=spec.get("volumeClaimTemplates", []),
                    source=doc,
                )
            )
        elif kind == "Job":
            if spec.get("parallelism", 1) != 1 or spec.get("completions", 1) != 1:
                raise Untranslatable(f"Job {name}: only one pod at a time is translated")
            found.append(Workload(kind, name, spec["template"], 1, source=doc))
        elif kind == "Cluster" and doc["apiVersion"].startswith("postgresql.cnpg.io/"):
            found.append(substitute_cnpg(docs, doc, notes))
    return found


def substitute_cnpg(docs, cluster, notes):
    """One Postgres pod standing in for a CloudNativePG Cluster, which needs its operator: the
    Cluster's image (substituted like any other), database, owner and owner Secret, resources,
    and the labels the operator gives its primary (so the Services' selectors are the ones
    checked); the restricted security context CloudNativePG gives its instance pods."""
    name = cluster["metadata"]["name"]
    spec = cluster["spec"]
    initdb = spec.get("bootstrap", {}).get("initdb")
    if not initdb:
        raise Untranslatable(f"Cluster {name}: only bootstrap.initdb is translated")
    database, owner = initdb["database"], initdb["owner"]
    secret_name = initdb["secret"]["name"]
    secret = one(docs, "Secret", secret_name)
    username = base64.b64decode(secret.get("data", {}).get("username", "")).decode()
    if username != owner:
        raise Untranslatable(
            f"Cluster {name}: the operator requires Secret {secret_name}'s username to be the "
            f"owner {owner!r}, found {username!r}"
        )
    if "password" not in secret.get("data", {}):
        raise Untranslatable(f"Cluster {name}: Secret {secret_name} has no key password")
    instance = f"{name}-1"
    labels = {
        "cnpg.io/cluster": name,
        "cnpg.io/instanceName": instance,
        "cnpg.io/podRole": "instance",
        "cnpg.io/instanceRole": "primary",
        "role": "primary",
    }
    isready = {"exec": {"command": ["pg_isready", "-U", owner, "-d", database, "-h", "127.0.0.1"]}}
    restricted = {
        "runAsNonRoot": True,
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    container = {
        "name": "postgres",
        "image": spec["imageName"],
        "env": [
            {"name": "POSTGRES_USER", "value": owner},
            {"name": "POSTGRES_DB", "value": database},
            {
                "name": "POSTGRES_PASSWORD",
                "valueFrom": {"secretKeyRef": {"name": secret_name, "key": "password"}},
            },
            {"name": "PGDATA", "value": "/var/lib/postgresql/data/pgdata"},
        ],
        "ports": [{"name": "postgresql", "containerPort": 5432}],
        "startupProbe": {**isready, "periodSeconds": 2, "failureThreshold": 60},
        "readinessProbe": {**isready, "periodSeconds": 5},
        "resources": spec.get("resources", {}),
        "securityContext": restricted,
        "volumeMounts": [
            {"name": "pgdata", "mountPath": "/var/lib/postgresql/data"},
            {"name": "tmp", "mountPath": "/tmp"},
            {"name": "run", "mountPath": "/var/run/postgresql"},
            {"name": "shm", "mountPath": "/dev/shm"},
        ],
    }
    template = {
        "metadata": {"labels": labels},
        "spec": {
            "enableServiceLinks": False,
            "automountServiceAccountToken": False,
            "securityContext": {
                "runAsNonRoot": True,
                "runAsUser": 999,  # the stand-in image's postgres user (CloudNativePG's: 26)
                "runAsGroup": 999,
                "fsGroup": 999,
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            "containers": [container],
            "volumes": [
                {"name": "tmp", "emptyDir": {}},
                {"name": "run", "emptyDir": {}},
                {"name": "shm", "emptyDir": {"medium": "Memory"}},
            ],
        },
    }
    backups = [d["metadata"]["name"] for d in find(docs, "ScheduledBackup")]
    notes.append(
        f"Cluster {name} (CloudNativePG, needs its operator): one Postgres pod {instance} "
        f"instead of {spec.get('instances', 1)} instances, labelled as the operator labels its "
        f"primary; initdb's database {database!r}, owner {owner!r} and the password of Secret "
        f"{secret_name}; uid 999 (the stand-in image's postgres); pg_isready probes instead of "
        "the instance manager's; no replication, failover or backups (ScheduledBackup "
        f"{', '.join(backups) or '-'} not applied)"
    )
    claims = [{"metadata": {"name": "pgdata"}, "spec": {}}]
    return Workload(
        "Cluster", name, template, 1, claims=claims, pod_names=[instance], source=cluster
    )


def pods(workload, namespace):
    """The pods the workload's controller would create, named as it names them."""
    labels = dict(workload.template.get("metadata", {}).get("labels", {}))
    annotations = dict(workload.template.get("metadata", {}).get("annotations", {}))
    spec = workload.template["spec"]
    made = []
    for index in range(workload.replicas):
        own = dict(labels)
        subdomain = None
        if workload.pod_names:
            name = workload.pod_names[index]
            hostname = name
        elif workload.kind == "StatefulSet":
            name = hostname = f"{workload.name}-{index}"
            subdomain = workload.service_name
            own["statefulset.kubernetes.io/pod-name"] = name
            own["apps.kubernetes.io/pod-index"] = str(index)
        elif workload.kind == "Deployment":
            template_hash = _pod_template_hash(workload.template)
            own["pod-template-hash"] = template_hash
            name = hostname = (
                f"{workload.name}-{template_hash}-{_suffix(f'{workload.name}{index}')}"
            )
        else:  # Job
            name = hostname = f"{workload.name}-{_suffix(workload.name)}"
            own["job-name"] = own["batch.kubernetes.io/job-name"] = workload.name
        hostname = spec.get("hostname", hostname)
        subdomain = spec.get("subdomain", subdomain)
        uid = hashlib.sha256(f"{namespace}/{name}".encode()).hexdigest()
        uid = f"{uid[:8]}-{uid[8:12]}-{uid[12:16]}-{uid[16:20]}-{uid[20:32]}"
        made.append(
            Pod(name, workload, own, annotations, spec, namespace, uid, hostname[:63], subdomain)
        )
    return made


def check_fields(pod):
    """Fail on any pod or container field this harness does not translate."""
    unknown = set(pod.spec) - POD_FIELDS
    if unknown:
        raise Untranslatable(
            f"pod {pod.name}: pod spec fields {sorted(unknown)} are not translated by "
            "tests/kube/translate.py (teach it, or say why they need no translation)"
        )
    unknown = set(pod.spec.get("securityContext", {})) - POD_SECURITY_FIELDS
    if unknown:
        raise Untranslatable(f"pod {pod.name}: securityContext fields {sorted(unknown)}")
    if pod.spec.get("enableServiceLinks", True) is not False:
        raise Untranslatable(
            f"pod {pod.name}: enableServiceLinks is not false; the harness does not emulate "
            "Service links (Kubernetes would set <SERVICE>_PORT=tcp://... in every container)"
        )
    if pod.spec.get("automountServiceAccountToken", True) is not False:
        raise Untranslatable(
            f"pod {pod.name}: automountServiceAccountToken is not false; the harness mounts no "
            "service account token"
        )
    if pod.spec.get("dnsPolicy", "ClusterFirst") != "ClusterFirst":
        raise Untranslatable(f"pod {pod.name}: only dnsPolicy ClusterFirst is translated")
    for container in pod.containers():
        where = f"pod {pod.name} container {container['name']}"
        unknown = set(container) - CONTAINER_FIELDS
        if unknown:
            raise Untranslatable(f"{where}: fields {sorted(unknown)} are not translated")
        unknown = set(container.get("securityContext", {})) - CONTAINER_SECURITY_FIELDS
        if unknown:
            raise Untranslatable(f"{where}: securityContext fields {sorted(unknown)}")
        lifecycle = container.get("lifecycle", {})
        if set(lifecycle) - {"preStop"}:
            raise Untranslatable(f"{where}: lifecycle {sorted(lifecycle)}: only preStop")
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            handler = set(container.get(probe, {})) & {"exec", "httpGet", "tcpSocket", "grpc"}
            if handler - {"exec", "httpGet", "tcpSocket"}:
                raise Untranslatable(f"{where}: {probe} {sorted(handler)} is not translated")


# -- images -----------------------------------------------------------------------------------


def repository(image):
    """`redis:7.4-alpine` -> `redis`; `ghcr.io/x/y:1@sha256:...` -> `ghcr.io/x/y`."""
    name = image.split("@", 1)[0]
    head, _, tail = name.rpartition(":")
    if head and "/" not in tail:
        name = head
    # registry.invalid: the overlays' placeholder registry (k8s/components/registry) for the chat's
    # images, which this checkout builds.
    for prefix in ("docker.io/library/", "docker.io/", "registry.invalid/"):
        if name.startswith(prefix):
            name = name[len(prefix) :]
    return name


def local_image(image, standin_env):
    """The local image that stands in for `image`, and where that choice comes from."""
    target = STANDINS.get(repository(image))
    if target is None:
        raise Untranslatable(
            f"no local stand-in for image {image} (no registry here): add its repository to "
            "STANDINS in tests/kube/translate.py"
        )
    if target in standin_env:
        return standin_env[target], f"{target} of scripts/airgap-images"
    return target, "built from this checkout by docker compose build"


# -- environment ------------------------------------------------------------------------------


def values_of(obj):
    """A ConfigMap's or Secret's {key: text value}."""
    values = {k: str(v) for k, v in (obj.get("data") or {}).items()}
    if obj["kind"] == "Secret":
        values = {k: base64.b64decode(v).decode("utf-8", "replace") for k, v in values.items()}
        values.update({k: str(v) for k, v in (obj.get("stringData") or {}).items()})
    else:
        binary = obj.get("binaryData") or {}
        values.update(
            {k: base64.b64decode(v).decode("utf-8", "replace") for k, v in binary.items()}
        )
    return values


def _source(docs, kind, name, optional, where):
    found = find(docs, kind, name)
    if not found:
        if optional:
            return None
        raise Untranslatable(
            f"{where}: {kind} {name!r} not found (Kubernetes: CreateContainerConfigError)"
        )
    return found[0]


def field_value(pod, path, pod_ip):
    """A downward API fieldRef."""
    simple = {
        "metadata.name": pod.name,
        "metadata.namespace": pod.namespace,
        "metadata.uid": pod.uid,
        "spec.nodeName": "smoke-boot-node",
        "spec.serviceAccountName": pod.spec.get("serviceAccountName", "default"),
        "status.podIP": pod_ip,
        "status.podIPs": pod_ip,
        "status.hostIP": pod_ip,
    }
    if path in simple:
        return simple[path]
    match = re.fullmatch(r"metadata\.(labels|annotations)\['([^']+)'\]", path)
    if match:
        return (pod.labels if match[1] == "labels" else pod.annotations).get(match[2], "")
    raise Untranslatable(f"pod {pod.name}: fieldRef {path} is not translated")


def resource_value(container, ref):
    resource = ref["resource"]
    section, _, kind = resource.partition(".")
    value = container.get("resources", {}).get(section, {}).get(kind)
    divisor = ref.get("divisor", "1")
    if kind == "cpu":
        milli = millicores(value) if value is not None else 0
        return str(-(-milli // millicores(divisor)))
    if kind == "memory":
        return str(-(-memory_bytes(value or "0") // memory_bytes(divisor)))
    raise Untranslatable(f"container {container['name']}: resourceFieldRef {resource}")


def environment(docs, pod, container, pod_ip, missing):
    """The container's environment as the kubelet makes it (an ordered dict)."""
    where = f"pod {pod.name} container {container['name']}"
    env = {}
    for source in container.get("envFrom", []):
        kind, ref = (
            ("ConfigMap", source["configMapRef"])
            if "configMapRef" in source
            else ("Secret", source["secretRef"])
        )
        obj = _source(docs, kind, ref["name"], ref.get("optional", False), where)
        if obj is None:
            continue
        for key, value in values_of(obj).items():
            name = source.get("prefix", "") + key
            if _ENV_NAME.match(name):  # the kubelet skips invalid names (with an event)
                env[name] = value
            else:
                missing.append(
                    f"{kind} {ref['name']} key {key!r} skipped in {container['name']} (not a "
                    "valid variable name)"
                )
    for item in container.get("env", []):
        name = item["name"]
        if item.get("value"):
            seen = []
            env[name] = expand(item["value"], env.get, seen)
            missing.extend(f"$({ref}) in env {name} of {container['name']}" for ref in seen)
            continue
        ref = item.get("valueFrom")
        if not ref:
            env[name] = ""
        elif "fieldRef" in ref:
            env[name] = field_value(pod, ref["fieldRef"]["fieldPath"], pod_ip)
        elif "resourceFieldRef" in ref:
            env[name] = resource_value(container, ref["resourceFieldRef"])
        else:
            kind, key_ref = (
                ("ConfigMap", ref["configMapKeyRef"])
                if "configMapKeyRef" in ref
                else ("Secret", ref["secretKeyRef"])
            )
            optional = key_ref.get("optional", False)
            obj = _source(docs, kind, key_ref["name"], optional, where)
            values = values_of(obj) if obj else {}
            if key_ref["key"] in values:
                env[name] = values[key_ref["key"]]
            elif not optional:
                raise Untranslatable(
                    f"{where}: env {name}: {kind} {key_ref['name']!r} has no key "
                    f"{key_ref['key']!r} (Kubernetes: CreateContainerConfigError)"
                )
    return env


def command_line(container, env, missing):
    """(entrypoint or None, arguments) for docker run, after `$(VAR)` expansion."""
    seen = []
    command = [expand(part, env.get, seen) for part in container.get("command", [])]
    args = [expand(part, env.get, seen) for part in container.get("args", [])]
    missing.extend(f"$({ref}) in the command of {container['name']}" for ref in seen)
    if command:
        return command[0], command[1:] + args
    return None, args


# -- security context and resources ----------------------------------------------------------


@dataclass
class Identity:
    uid: int | None
    gid: int | None
    groups: list


def identity(pod, container, image_user):
    """The uid, gid and supplementary groups the container runs with; runAsNonRoot checked
    as the kubelet checks it (numerically, against the image's USER when none is set)."""
    pod_sc = pod.spec.get("securityContext", {})
    sc = container.get("securityContext", {})
    uid = sc.get("runAsUser", pod_sc.get("runAsUser"))
    gid = sc.get("runAsGroup", pod_sc.get("runAsGroup"))
    non_root = sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot", False))
    where = f"pod {pod.name} container {container['name']}"
    if uid is None:
        user = (image_user or "0").split(":", 1)[0]
        if not user.isdigit():
            if non_root:
                raise Untranslatable(
                    f"{where}: image user {user!r} is not numeric, so runAsNonRoot cannot be "
                    "verified (Kubernetes: CreateContainerConfigError)"
                )
        elif non_root and int(user) == 0:
            raise Untranslatable(f"{where}: container has runAsNonRoot and image will run as root")
    elif non_root and uid == 0:
        raise Untranslatable(f"{where}: runAsNonRoot with runAsUser 0")
    groups = list(pod_sc.get("supplementalGroups", []))
    if "fsGroup" in pod_sc:
        groups.append(pod_sc["fsGroup"])
    return Identity(uid, gid, groups)


def security_args(pod, container, who):
    """docker run flags for the container's security context."""
    pod_sc = pod.spec.get("securityContext", {})
    sc = container.get("securityContext", {})
    args = []
    if who.uid is not None:
        args += ["--user", f"{who.uid}:{who.gid}" if who.gid is not None else str(who.uid)]
    for group in who.groups:
        args += ["--group-add", str(group)]
    if sc.get("privileged"):
        args.append("--privileged")
    if sc.get("readOnlyRootFilesystem"):
        args.append("--read-only")
    capabilities = sc.get("capabilities", {})
    for cap in capabilities.get("drop", []):
        args += ["--cap-drop", cap]
    for cap in capabilities.get("add", []):
        args += ["--cap-add", cap]
    # Kubernetes allows escalation unless told otherwise (and never with privileged).
    if sc.get("allowPrivilegeEscalation") is False:
        args += ["--security-opt", "no-new-privileges"]
    seccomp = sc.get("seccompProfile", pod_sc.get("seccompProfile", {"type": "Unconfined"}))
    if seccomp["type"] == "Unconfined":
        args += ["--security-opt", "seccomp=unconfined"]
    elif seccomp["type"] != "RuntimeDefault":  # Docker's default profile is the runtime's
        raise Untranslatable(
            f"pod {pod.name} container {container['name']}: seccompProfile {seccomp['type']}"
        )
    for sysctl in pod_sc.get("sysctls", []):
        args += ["--sysctl", f"{sysctl['name']}={sysctl['value']}"]
    return args


def resource_args(container):
    """Limits as cgroup limits: --cpus (CFS quota) and --memory without swap, as the kubelet
    sets them. Requests are not translated: as cpu shares (51 for 50m) beside the engine's
    other containers (1024 each) they starve the pods whenever anything else runs there (4.6
    times slower beside one busy container); the kubelet shields pods in a cgroup of theirs."""
    limits = container.get("resources", {}).get("limits", {})
    args = []
    if "cpu" in limits:
        args += ["--cpus", f"{millicores(limits['cpu']) / 1000:g}"]
    if "memory" in limits:
        memory = memory_bytes(limits["memory"])
        args += ["--memory", str(memory), "--memory-swap", str(memory)]
    return args


# -- volumes ----------------------------------------------------------------------------------


@dataclass
class VolumeFile:
    """A file a ConfigMap or Secret volume holds: its path in the volume, content and mode."""

    path: str
    content: bytes
    mode: int


def projected_files(docs, pod, volume):
    """The files of a configMap or secret volume ([] for an optional one that is missing),
    None for a missing required one (the kubelet keeps such a pod in ContainerCreating)."""
    if "configMap" in volume:
        kind, spec, name_key = "ConfigMap", volume["configMap"], "name"
    else:
        kind, spec, name_key = "Secret", volume["secret"], "secretName"
    name = spec[name_key]
    obj = _source(docs, kind, name, True, f"pod {pod.name} volume {volume['name']}")
    if obj is None:
        if spec.get("optional", False):
            return []
        raise Untranslatable(
            f"pod {pod.name} volume {volume['name']}: {kind} {name!r} not found (Kubernetes "
            "keeps the pod in ContainerCreating: MountVolume.SetUp failed)"
        )
    data = {k: str(v).encode() for k, v in (obj.get("data") or {}).items()}
    if kind == "Secret":
        data = {k: base64.b64decode(v) for k, v in data.items()}
    else:
        data.update({k: base64.b64decode(v) for k, v in (obj.get("binaryData") or {}).items()})
    mode = spec.get("defaultMode", 0o644)
    items = spec.get("items")
    if items is None:
        return [VolumeFile(k, v, mode) for k, v in sorted(data.items())]
    files = []
    for item in items:
        if item["key"] not in data:
            if spec.get("optional", False):
                continue
            raise Untranslatable(
                f"pod {pod.name} volume {volume['name']}: {kind} {name!r} has no key "
                f"{item['key']!r} (Kubernetes: MountVolume.SetUp failed)"
            )
        files.append(VolumeFile(item["path"], data[item["key"]], item.get("mode", mode)))
    return files


def volume_kind(volume):
    for kind in ("configMap", "secret", "emptyDir"):
        if kind in volume:
            return kind
    raise Untranslatable(
        f"volume {volume['name']}: {sorted(set(volume) - {'name'})} is not translated"
    )


def describe(argv, secrets=()):
    """A docker command line for messages: -e values and the Secrets' values elided."""
    shown = []
    for i, part in enumerate(argv):
        if i and argv[i - 1] == "-e":
            part = part.split("=", 1)[0] + "=…"
        for value in secrets:
            part = part.replace(value, "<secret>")
        shown.append(shlex.quote(part))
    return " ".join(shown)
