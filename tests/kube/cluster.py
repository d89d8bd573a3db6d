"""A rendered overlay run on the Docker engine: pods as the kubelet would run them, on one node.

    with Cluster(docs, workdir=..., log=print, standins={...}, harness_image=...) as cluster:
        cluster.boot()                     # every pod ready, or BootError naming the pod
        cluster.endpoints("nginx", 8080)   # [(pod IP, port)] of the ready pods behind a Service

Per pod: a sandbox container (the kubelet's pause container: it holds the pod's network and IPC
namespaces, its address and host name), the init containers one after the other, each to exit
0, then the containers, each gated by its startup probe, then its readiness probe, run from
the host against the pod's address as the kubelet runs them from the node. A cluster DNS
(tests/kube/clusterdns.py) answers the Services' names with the addresses of their ready pods
(every pod for publishNotReadyAddresses) and StatefulSet pods' <pod>.<service> names; every
container gets a pod's resolv.conf (search <ns>.svc.cluster.local svc.cluster.local
cluster.local, ndots:5). Phases: the data tier, then the Jobs to completion, then the rest.

Every adaptation is collected in `notes` and printed; everything started is removed on exit,
after a failure too, by the IDs this object recorded (nothing else on the engine is touched).
"""

import concurrent.futures
import http.client
import json
import os
import shutil
import socket
import subprocess
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from tests.kube import translate
from tests.kube.translate import CLUSTER_DOMAIN, Untranslatable

HERE = Path(__file__).resolve().parent
DATA_TIER = ("redis", "postgres")  # started first: what the Jobs and the apps need
PHASES = (
    ("data tier", lambda w: w.name in DATA_TIER and w.kind != "Job", 120),
    ("jobs", lambda w: w.kind == "Job", 150),
    ("apps", lambda w: True, 150),
)
RESTARTS = 2  # a container may exit this often before the boot fails (CrashLoopBackOff)
LOG_LINES = 25


class BootError(AssertionError):
    """A pod did not come up: names it, says what was awaited and shows its last log lines."""


@dataclass
class ContainerState:
    spec: dict
    cid: str | None = None
    started_at: float = 0.0
    started: bool = False  # startup probe passed (or none)
    ready: bool = False
    restarts: int = 0
    next_probe: dict = field(default_factory=dict)
    failures: dict = field(default_factory=dict)
    last: dict = field(default_factory=dict)


@dataclass
class RunningPod:
    pod: translate.Pod
    sandbox: str = ""
    ip: str = ""
    folder: Path | None = None
    containers: dict = field(default_factory=dict)  # name -> ContainerState (init ones too)
    tmpfs_volumes: dict = field(default_factory=dict)  # volume name -> docker volume name
    ready: bool = False
    ready_after: float | None = None
    missing: list = field(default_factory=list)  # unresolved $(VAR) references, skipped keys

    @property
    def title(self):
        return f"pod {self.pod.name} ({self.pod.workload.kind} {self.pod.workload.name})"


class Cluster:
    def __init__(self, docs, *, workdir, log, standins, harness_image, name="kube"):
        self.docs = docs
        self.workdir = Path(workdir)
        self.log = log
        self.standins = standins
        self.harness_image = harness_image
        self.run_id = f"{name}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.label = f"org.chatstack.kube.run={self.run_id}"
        self.docker = shutil.which("docker") or "docker"
        self.notes = {}  # adaptation -> None (an ordered set)
        self.pods = {}  # name -> RunningPod
        self.started = []  # container IDs, for teardown
        self.volumes = []
        self.network = None
        self.dns_ip = None
        self.lock = threading.Lock()
        self.cancel = threading.Event()
        self.images = {}  # manifest image -> (local image, inspect)
        self.timings = {}
        self.secret_values = {
            value
            for secret in translate.find(docs, "Secret")
            for value in translate.values_of(secret).values()
            if len(value) >= 8
        }
        namespaces = {d["metadata"].get("namespace") for d in docs if d["kind"] != "Namespace"}
        namespaces.discard(None)
        if len(namespaces) != 1:
            raise Untranslatable(f"expected one namespace in the render, found {namespaces}")
        self.namespace = namespaces.pop()

    # -- plumbing ---------------------------------------------------------------------------

    def note(self, text):
        with self.lock:
            self.notes.setdefault(text)

    def run(self, *args, timeout=60, check=True):
        try:
            result = subprocess.run(
                [self.docker, *args], capture_output=True, text=True, timeout=timeout
            )
        except subprocess.TimeoutExpired:
            raise BootError(
                f"expected `{translate.describe(['docker', *args])[:300]}` to finish within "
                f"{timeout} s, found it still running"
            ) from None
        if check and result.returncode != 0:
            raise BootError(
                f"expected `{translate.describe(['docker', *args], self.secret_values)[:600]}` "
                f"to succeed, found exit "
                f"{result.returncode}: {result.stderr.strip()[-800:]}"
            )
        return result

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.teardown()

    def teardown(self):
        """Remove every container, volume and network this object made, then its folder."""
        self.cancel.set()
        started = time.monotonic()
        if self.started:
            self.run("rm", "--force", "--volumes", *self.started, timeout=120, check=False)
        for volume in self.volumes:
            self.run("volume", "rm", "--force", volume, check=False)
        if self.network:
            self.run("network", "rm", self.network, check=False)
        shutil.rmtree(self.workdir, ignore_errors=True)
        self.log(
            f"teardown: {len(self.started)} containers, {len(self.volumes)} volumes and the "
            f"network removed in {time.monotonic() - started:.1f} s"
        )

    def logs(self, cid, lines=LOG_LINES):
        result = self.run("logs", "--tail", str(lines), cid, check=False, timeout=30)
        return (result.stdout + result.stderr).rstrip().splitlines()

    def dump_logs(self, path):
        """Every container's last 200 log lines into `path` (kept for CI artefacts)."""
        out = []
        for running in self.pods.values():
            for name, state in running.containers.items():
                if state.cid:
                    out.append(f"==> {running.pod.name} / {name} ({state.restarts} restarts)")
                    out.extend(self.logs(state.cid, 200))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("\n".join(out) + "\n")

    def diagnose(self, running, headline):
        lines = [f"{running.title}: {headline}"]
        if running.missing:
            unresolved = "; ".join(dict.fromkeys(running.missing))
            lines.append(f"  unresolved in this pod's manifests: {unresolved}")
        for name, state in running.containers.items():
            if not state.cid:
                continue
            lines.append(f"  last log lines of container {name}:")
            lines.extend(f"    {line}" for line in self.logs(state.cid) or ["(none)"])
        others = [
            f"{r.pod.name}: {'' if r.ready else 'not '}"
            + ("complete" if r.pod.workload.kind == "Job" else "ready")
            for r in self.pods.values()
            if r is not running and r.sandbox
        ]
        if others:
            lines.append("  other pods: " + ", ".join(others))
        return BootError("\n".join(lines))

    # -- plan -------------------------------------------------------------------------------

    def plan(self):
        """Pods of every workload, fields checked, images resolved."""
        notes = []
        workloads = translate.workloads(self.docs, notes)
        for text in notes:
            self.note(text)
        for workload in workloads:
            for pod in translate.pods(workload, self.namespace):
                translate.check_fields(pod)
                self.pods[pod.name] = RunningPod(pod)
                for container in pod.containers():
                    self.resolve_image(container["image"])
        kinds = {}
        for doc in self.docs:
            kinds.setdefault(doc["kind"], []).append(doc["metadata"]["name"])
        run = {"Deployment", "StatefulSet", "Job", "Cluster"}
        used = {"ConfigMap", "Secret", "Service"}
        stood_in = {"Gateway", "HTTPRoute"}
        skipped = sorted(set(kinds) - run - used - stood_in - {"Namespace"})
        self.note(
            "namespace "
            f"{self.namespace}: a Docker network of its own (internal: no route out); the "
            "Namespace's Pod Security labels are not enforced (no admission)"
        )
        if skipped:
            self.note(
                "not applied (no controller here): "
                + "; ".join(f"{k} {', '.join(kinds[k])}" for k in skipped)
            )
        return workloads

    def resolve_image(self, image):
        if image in self.images:
            return self.images[image]
        local, why = translate.local_image(image, self.standins)
        found = self.run("image", "inspect", local, check=False)
        if found.returncode != 0:
            raise BootError(
                f"expected the local image {local} (for {image}; {why}), found none: "
                "tests/kube/conftest.py builds them (scripts/airgap-images, docker compose build)"
            )
        inspect = json.loads(found.stdout)[0]
        self.images[image] = (local, inspect)
        self.note(f"image {image} -> {local} ({why}; never pulled)")
        return self.images[image]

    # -- network and DNS --------------------------------------------------------------------

    def start_network(self):
        self.network = f"{self.run_id}-{self.namespace}"
        self.run("network", "create", "--internal", "--label", self.label, self.network)
        records = self.workdir / "dns"
        records.mkdir(parents=True)
        self.write_records()
        script = self.workdir / "dns-script"
        script.mkdir()
        shutil.copy(HERE / "clusterdns.py", script / "clusterdns.py")
        os.chmod(script / "clusterdns.py", 0o644)
        for folder in (records, script):
            os.chmod(folder, 0o755)  # noqa: S103 - read by the DNS container's uid 65534
        cid = self.run(
            "run", "--detach", "--name", f"{self.run_id}-cluster-dns", "--label", self.label,
            "--network", self.network, "--user", "65534:65534",
            "--sysctl", "net.ipv4.ip_unprivileged_port_start=53",
            "--read-only", "--cap-drop", "ALL", "--security-opt", "no-new-privileges",
            "--memory", "64m", "--mount", f"type=bind,src={records},dst=/records,readonly",
            "--mount", f"type=bind,src={script},dst=/dns,readonly",
            self.harness_image, "python3", "-u", "/dns/clusterdns.py", "/records/records.json",
        ).stdout.strip()  # fmt: skip
        self.started.append(cid)
        self.dns_ip = self.address(cid)
        deadline = time.monotonic() + 20
        while not self.dns_answers():
            if time.monotonic() > deadline:
                raise BootError(
                    "expected the cluster DNS to answer within 20 s, found no answer; its log: "
                    + " | ".join(self.logs(cid))
                )
            time.sleep(0.2)
        self.resolv = self.workdir / "resolv.conf"
        self.resolv.write_text(
            f"nameserver {self.dns_ip}\n"
            f"search {self.namespace}.svc.{CLUSTER_DOMAIN} svc.{CLUSTER_DOMAIN} {CLUSTER_DOMAIN}\n"
            "options ndots:5\n"
        )
        os.chmod(self.resolv, 0o644)
        self.note(
            "cluster DNS: a DNS server of the harness (tests/kube/clusterdns.py) answers "
            f"<service>.{self.namespace}.svc.{CLUSTER_DOMAIN} with the addresses of the ready "
            "pods (all pods with publishNotReadyAddresses), <pod>.<service>... for StatefulSet "
            "pods, NXDOMAIN for anything else; pods get the kubelet's resolv.conf (search "
            "domains, ndots:5)"
        )
        self.note(
            "Services: no virtual IP or kube-proxy: a ClusterIP Service's name resolves to its "
            "ready pods' addresses, as a headless one does (its port must equal the target "
            "port, checked)"
        )

    def address(self, cid):
        out = self.run(
            "inspect", "--format",
            "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}", cid,
        ).stdout.split()  # fmt: skip
        if not out:
            raise BootError(f"expected container {cid[:12]} to have an address, found none")
        return out[0]

    def dns_answers(self):
        query = b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x05probe\x00\x00\x01\x00\x01"
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.settimeout(0.5)
            try:
                sock.sendto(query, (self.dns_ip, 53))
                return sock.recv(512)[:2] == b"\x12\x34"
            except OSError:
                return False

    def services(self):
        return [
            s
            for s in translate.find(self.docs, "Service")
            if s["spec"].get("type") != "ExternalName" and s["spec"].get("selector")
        ]

    def endpoint_pods(self, service, ready_only=True):
        """The running pods that are endpoints of `service` (selector, ports, readiness)."""
        spec = service["spec"]
        found = []
        for running in self.pods.values():
            if not running.ip or not translate_selects(spec["selector"], running.pod.labels):
                continue
            if ready_only and not running.ready and not spec.get("publishNotReadyAddresses"):
                continue
            if all(self.target_port(running, port) is not None for port in spec.get("ports", [])):
                found.append(running)
        return found

    def target_port(self, running, port):
        target = port.get("targetPort", port["port"])
        if isinstance(target, int):
            return target
        for container in running.pod.containers(init=False):
            for declared in container.get("ports", []):
                if declared.get("name") == target:
                    return declared["containerPort"]
        return None

    def check_services(self):
        """Every Service port reaches the pods on the same number (no virtual IP here)."""
        for service in self.services():
            name = service["metadata"]["name"]
            selected = [
                r
                for r in self.pods.values()
                if translate_selects(service["spec"]["selector"], r.pod.labels)
            ]
            if not selected:
                raise Untranslatable(f"Service {name}: its selector matches no pod of the render")
            for running in selected:
                for port in service["spec"].get("ports", []):
                    target = self.target_port(running, port)
                    if target is None:
                        self.note(
                            f"Service {name}: pod {running.pod.name} declares no port "
                            f"{port.get('targetPort')!r}, so it is no endpoint (as in Kubernetes)"
                        )
                    elif target != port["port"] and service["spec"].get("clusterIP") != "None":
                        raise Untranslatable(
                            f"Service {name}: port {port['port']} -> target port {target}: "
                            "without a virtual IP clients reach pods on the Service's port"
                        )

    def write_records(self):
        names = {}
        if self.pods:
            for service in self.services():
                svc = service["metadata"]["name"]
                pods = self.endpoint_pods(service)
                if pods:
                    names[f"{svc}.{self.namespace}.svc.{CLUSTER_DOMAIN}"] = [r.ip for r in pods]
                headless = service["spec"].get("clusterIP") == "None"
                for running in pods if headless else []:
                    if running.pod.subdomain == svc:
                        fqdn = f"{running.pod.hostname}.{svc}.{self.namespace}.svc.{CLUSTER_DOMAIN}"
                        names[fqdn] = [running.ip]
        path = self.workdir / "dns" / "records.json"
        with self.lock:
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps({"names": names}, indent=1, sort_keys=True))
            os.chmod(tmp, 0o644)
            tmp.replace(path)

    # -- pods -------------------------------------------------------------------------------

    def start_sandbox(self, running):
        pod = running.pod
        running.folder = self.workdir / "pods" / pod.name
        running.folder.mkdir(parents=True)
        cid = self.run(
            "run", "--detach", "--name", f"{self.run_id}-{pod.name}", "--label", self.label,
            "--label", f"org.chatstack.kube.pod={pod.name}", "--network", self.network,
            "--hostname", pod.hostname, "--ipc", "shareable",
            "--mount", f"type=bind,src={self.resolv},dst=/etc/resolv.conf,readonly",
            "--user", "65535:65535", "--read-only", "--cap-drop", "ALL",
            "--security-opt", "no-new-privileges", "--memory", "32m",
            "--entrypoint", "sleep", self.harness_image, "infinity",
        ).stdout.strip()  # fmt: skip
        self.started.append(cid)
        running.sandbox = cid
        running.ip = self.address(cid)
        self.make_volumes(running)

    def make_volumes(self, running):
        pod = running.pod
        fs_group = pod.spec.get("securityContext", {}).get("fsGroup")
        base = running.folder / "volumes"
        base.mkdir()
        for volume in pod.spec.get("volumes", []):
            kind = translate.volume_kind(volume)
            path = base / volume["name"]
            if kind == "emptyDir" and volume["emptyDir"].get("medium") == "Memory":
                size = volume["emptyDir"].get("sizeLimit")
                opts = [f"mode={'2777' if fs_group is not None else '0777'}"]
                if size:
                    opts.append(f"size={translate.memory_bytes(size)}")
                if fs_group is not None:
                    opts.append(f"gid={fs_group}")
                name = f"{self.run_id}-{pod.name}-{volume['name']}"
                self.run(
                    "volume", "create", "--label", self.label, "--driver", "local",
                    "--opt", "type=tmpfs", "--opt", "device=tmpfs",
                    "--opt", f"o={','.join(opts)}", name,
                )  # fmt: skip
                self.volumes.append(name)
                running.tmpfs_volumes[volume["name"]] = name
                self.note("emptyDir medium Memory: a tmpfs volume of the pod (size = sizeLimit)")
                continue
            if kind == "emptyDir":
                path.mkdir()
                os.chmod(path, 0o777)  # noqa: S103 - the kubelet's emptyDir mode
                set_ownership(path, fs_group, read_only=False)
                if volume["emptyDir"].get("sizeLimit"):
                    self.note(
                        "emptyDir sizeLimit: not enforced (the kubelet evicts a pod over it; "
                        "a directory on the host has no limit)"
                    )
                continue
            files = translate.projected_files(self.docs, pod, volume)
            write_atomic_volume(path, files)
            set_ownership(path, fs_group, read_only=True)
        for claim in running.pod.workload.claims:
            path = base / claim["metadata"]["name"]
            path.mkdir()
            (path / "lost+found").mkdir(mode=0o700)
            os.chmod(path, 0o755)  # noqa: S103 - a new filesystem's root
            set_ownership(path, fs_group, read_only=False)
            self.note(
                f"volumeClaimTemplates {claim['metadata']['name']} ({running.pod.workload.name}):"
                " a fresh directory per pod, root-owned 0755 with lost+found as a new "
                "filesystem has, fsGroup applied; not a PersistentVolume (nothing survives)"
            )

    def mounts(self, running, container):
        volumes = {v["name"]: v for v in running.pod.spec.get("volumes", [])}
        claims = {c["metadata"]["name"] for c in running.pod.workload.claims}
        args = []
        for mount in container.get("volumeMounts", []):
            name = mount["name"]
            where = f"{running.title} container {container['name']} volumeMount {name}"
            if set(mount) - {"name", "mountPath", "subPath", "readOnly"}:
                raise Untranslatable(f"{where}: {sorted(set(mount))} not translated")
            if name in running.tmpfs_volumes:
                if mount.get("subPath"):
                    raise Untranslatable(f"{where}: subPath of a Memory emptyDir")
                spec = f"type=volume,src={running.tmpfs_volumes[name]},dst={mount['mountPath']}"
                args += ["--mount", spec + (",readonly" if mount.get("readOnly") else "")]
                continue
            if name not in volumes and name not in claims:
                raise Untranslatable(f"{where}: no volume or claim of that name")
            source = running.folder / "volumes" / name
            projected = name in volumes and translate.volume_kind(volumes[name]) != "emptyDir"
            if mount.get("subPath"):
                source = source / mount["subPath"]
                if projected:
                    source = Path(os.path.realpath(source))
                    if not source.exists():
                        raise BootError(
                            f"{where}: subPath {mount['subPath']} is not in the volume "
                            "(Kubernetes: CreateContainerConfigError)"
                        )
                elif not source.exists():
                    source.mkdir(parents=True, mode=0o777)
            read_only = projected or mount.get("readOnly", False)
            spec = f"type=bind,src={source},dst={mount['mountPath']}"
            args += ["--mount", spec + (",readonly" if read_only else "")]
        return args

    def container_args(self, running, container):
        """The `docker run` command line of one container of the pod."""
        pod = running.pod
        local, inspect = self.resolve_image(container["image"])
        env = translate.environment(self.docs, pod, container, running.ip, running.missing)
        entrypoint, argv = translate.command_line(container, env, running.missing)
        who = translate.identity(pod, container, inspect["Config"].get("User"))
        mounted = {m["mountPath"] for m in container.get("volumeMounts", [])}
        for path in inspect["Config"].get("Volumes") or {}:
            if path not in mounted:
                self.note(
                    f"image {local} declares VOLUME {path}: Docker mounts an anonymous "
                    "writable volume there, as containerd does"
                )
        args = [
            "run", "--name", f"{self.run_id}-{pod.name}-{container['name']}",
            "--label", self.label, "--label", f"org.chatstack.kube.pod={pod.name}",
            "--network", f"container:{running.sandbox}", "--ipc", f"container:{running.sandbox}",
            "--mount", f"type=bind,src={self.resolv},dst=/etc/resolv.conf,readonly",
        ]  # fmt: skip
        args += translate.security_args(pod, container, who)
        args += translate.resource_args(container)
        args += self.mounts(running, container)
        if container.get("workingDir"):
            args += ["--workdir", container["workingDir"]]
        for key, value in env.items():
            args += ["-e", f"{key}={value}"]
        if entrypoint is not None:
            args += ["--entrypoint", entrypoint]
        return [*args, local, *argv]

    def start_container(self, running, state):
        argv = self.container_args(running, state.spec)
        self.log(f"  docker {translate.describe(argv, self.secret_values)}", terminal=False)
        argv[0] = "create"  # created first, so a container that cannot start is still removed
        state.cid = self.run(*argv).stdout.strip()
        with self.lock:
            self.started.append(state.cid)
        started = self.run("start", state.cid, check=False)
        if started.returncode != 0:
            raise self.diagnose(
                running,
                f"container {state.spec['name']} could not start (Kubernetes: StartError): "
                f"{started.stderr.strip()[-600:]}",
            )
        self.reset_probes(state)

    def inspect_states(self, running):
        ids = [s.cid for s in running.containers.values() if s.cid]
        out = self.run(
            "inspect", "--format",
            "{{.Id}} {{.State.Running}} {{.State.ExitCode}} {{.State.OOMKilled}}", *ids,
        ).stdout  # fmt: skip
        states = {}
        for line in out.splitlines():
            cid, is_running, code, oom = line.split()
            states[cid] = (is_running == "true", int(code), oom == "true")
        return states

    def exited(self, running, state, code, oom):
        """A container that stopped: restart it as the kubelet would, within a budget."""
        why = "OOMKilled (its memory limit)" if oom else f"exit code {code}"
        policy = running.pod.restart_policy
        if policy == "Never" or (policy == "OnFailure" and code == 0):
            raise self.diagnose(running, f"container {state.spec['name']} ended: {why}")
        if state.restarts >= RESTARTS:
            raise self.diagnose(
                running,
                f"container {state.spec['name']} exited {state.restarts + 1} times, last with "
                f"{why} (Kubernetes: CrashLoopBackOff)",
            )
        state.restarts += 1
        self.log(
            f"  {running.pod.name}/{state.spec['name']}: {why}; restart {state.restarts} of "
            f"{RESTARTS} after {state.restarts} s"
        )
        self.note(
            f"a container that exits is restarted at most {RESTARTS} times, after 1 s, 2 s (the "
            "kubelet: 10 s, doubling); each restart is printed"
        )
        time.sleep(state.restarts)
        again = self.run("start", state.cid, check=False)
        if again.returncode != 0:
            raise self.diagnose(
                running, f"container {state.spec['name']} could not restart: {again.stderr}"
            )
        self.reset_probes(state)

    def reset_probes(self, state):
        """A container (re)started: not started, not ready, first probes after their delay."""
        state.started_at = time.monotonic()
        state.started = "startupProbe" not in state.spec
        state.ready = False
        state.failures = {}
        state.next_probe = {
            kind: state.started_at + state.spec[kind].get("initialDelaySeconds", 0)
            for kind in ("startupProbe", "readinessProbe")
            if kind in state.spec
        }

    def run_init_containers(self, running, deadline):
        for spec in running.pod.spec.get("initContainers", []):
            state = running.containers[spec["name"]]
            self.start_container(running, state)
            while True:
                self.check_cancel()
                is_running, code, oom = self.inspect_states(running)[state.cid]
                if not is_running:
                    if code == 0 and not oom:
                        break
                    self.exited(running, state, code, oom)
                    continue
                if time.monotonic() > deadline:
                    raise self.diagnose(
                        running,
                        f"init container {spec['name']} still running after the phase's "
                        "deadline (an init container that never finishes)",
                    )
                time.sleep(0.5)
            state.ready = True

    def probe(self, running, state, kind):
        """Run the container's `kind` probe once: (passed, detail)."""
        probe = state.spec[kind]
        timeout = probe.get("timeoutSeconds", 1)
        if "exec" in probe:
            command = probe["exec"]["command"]
            try:
                # +2 s: the docker CLI's own start-up; the kubelet talks to the runtime directly
                result = subprocess.run(
                    [self.docker, "exec", state.cid, *command],
                    capture_output=True, text=True, timeout=timeout + 2,
                )  # fmt: skip
            except subprocess.TimeoutExpired:
                return False, f"exec {command}: timed out after {timeout} s"
            output = (result.stdout + result.stderr).strip()[-200:]
            return result.returncode == 0, f"exec {command}: exit {result.returncode} {output}"
        port_spec = (probe.get("httpGet") or probe.get("tcpSocket"))["port"]
        port = port_spec
        if not isinstance(port_spec, int):
            ports = {p.get("name"): p["containerPort"] for p in state.spec.get("ports", [])}
            if port_spec not in ports:
                raise self.diagnose(running, f"{kind} of {state.spec['name']}: no port {port_spec}")
            port = ports[port_spec]
        if "tcpSocket" in probe:
            try:
                with socket.create_connection((running.ip, port), timeout=timeout):
                    return True, f"tcp :{port} open"
            except OSError as exc:
                return False, f"tcp :{port}: {exc}"
        get = probe["httpGet"]
        host = get.get("host", running.ip)
        if get.get("scheme", "HTTP") != "HTTP":
            raise Untranslatable(f"{kind}: httpGet scheme {get['scheme']} not translated")
        headers = {"Host": f"{host}:{port}", "User-Agent": "kube-probe/1.32", "Accept": "*/*"}
        headers.update({h["name"]: h["value"] for h in get.get("httpHeaders", [])})
        path = get.get("path", "/")
        connection = http.client.HTTPConnection(host, port, timeout=timeout)
        try:
            connection.request("GET", path, headers=headers)
            response = connection.getresponse()
            body = response.read(200).decode("utf-8", "replace").strip()
            passed = 200 <= response.status < 400
            return passed, f"GET :{port}{path}: HTTP {response.status} {body[:120]}"
        except (OSError, http.client.HTTPException) as exc:
            return False, f"GET :{port}{path}: {type(exc).__name__}: {exc}"
        finally:
            connection.close()

    def gate(self, running, state, now):
        """Advance one container's startup and readiness probes; True once it is ready."""
        for kind in ("startupProbe", "readinessProbe"):
            if kind not in state.spec or now < state.next_probe[kind]:
                continue
            period = state.spec[kind].get("periodSeconds", 10)
            while state.next_probe[kind] <= now:  # a ticker: missed ticks are dropped
                state.next_probe[kind] += period
            if kind == "readinessProbe" and not state.started:
                continue  # the kubelet probes readiness only after the startup probe passed
            if (kind == "startupProbe" and state.started) or state.ready:
                continue
            passed, detail = self.probe(running, state, kind)
            state.last[kind] = detail
            if passed:
                if kind == "startupProbe":
                    state.started = True
                else:
                    state.ready = True
                continue
            state.failures[kind] = state.failures.get(kind, 0) + 1
            threshold = state.spec[kind].get("failureThreshold", 3)
            if kind == "startupProbe" and state.failures[kind] >= threshold:
                raise self.diagnose(
                    running,
                    f"startup probe of {state.spec['name']} failed {threshold} times (Kubernetes "
                    f"kills the container); last: {detail}",
                )
        if state.started and "readinessProbe" not in state.spec:
            state.ready = True
        return state.ready

    def wait_ready(self, running, deadline):
        main = [running.containers[c["name"]] for c in running.pod.spec["containers"]]
        job = running.pod.workload.kind == "Job"
        while True:
            self.check_cancel()
            now = time.monotonic()
            states = self.inspect_states(running)
            done = True
            for state in main:
                is_running, code, oom = states[state.cid]
                if not is_running:
                    if job and code == 0 and not oom:
                        state.ready = True
                        continue
                    if job:
                        raise self.diagnose(
                            running,
                            f"container {state.spec['name']} failed: exit code {code}"
                            f"{' (OOMKilled)' if oom else ''} (the Job would retry up to its "
                            "backoffLimit; the harness fails at once: the data tier is ready)",
                        )
                    self.exited(running, state, code, oom)
                    done = False
                    continue
                if job:
                    done = False
                elif not self.gate(running, state, now):
                    done = False
            if done:
                return
            if now > deadline:
                waiting = [
                    f"{s.spec['name']} ("
                    + ("running" if job else "startup" if not s.started else "readiness")
                    + (f"; last probe: {s.last}" if s.last else "")
                    + ")"
                    for s in main
                    if not s.ready
                ]
                raise self.diagnose(
                    running,
                    "not "
                    + ("complete" if job else "ready")
                    + f" by the phase's deadline; waiting for {', '.join(waiting)}",
                )
            time.sleep(0.25)

    def check_cancel(self):
        if self.cancel.is_set():
            raise BootError("cancelled: another pod failed first")

    def bring_up(self, running, deadline):
        started = time.monotonic()
        pod = running.pod
        for spec in pod.containers():
            running.containers[spec["name"]] = ContainerState(spec)
        self.run_init_containers(running, deadline)
        for spec in pod.spec["containers"]:
            self.start_container(running, running.containers[spec["name"]])
        self.wait_ready(running, deadline)
        running.ready = True
        running.ready_after = time.monotonic() - started
        self.write_records()
        what = "complete" if pod.workload.kind == "Job" else "ready"
        self.log(f"  {pod.name}: {what} after {running.ready_after:.1f} s")
        if running.missing:
            self.log(f"  {pod.name}: unresolved: {'; '.join(dict.fromkeys(running.missing))}")

    # -- the boot ---------------------------------------------------------------------------

    def boot(self):
        started = time.monotonic()
        workloads = self.plan()
        self.check_services()
        self.start_network()
        done = set()
        for phase, belongs, budget in PHASES:
            chosen = [w for w in workloads if belongs(w) and w.name not in done]
            done.update(w.name for w in chosen)
            members = [r for r in self.pods.values() if r.pod.workload in chosen]
            if not members:
                continue
            phase_started = time.monotonic()
            self.log(
                f"phase {phase}: {', '.join(r.pod.name for r in members)} (deadline {budget} s)"
            )
            # Every pod of the phase gets its address (and its DNS names) first, as pods
            # created together are scheduled and get addresses before their containers run.
            for running in members:
                self.start_sandbox(running)
            self.write_records()
            deadline = time.monotonic() + budget
            pool = concurrent.futures.ThreadPoolExecutor(len(members))
            errors = []
            try:
                futures = [pool.submit(self.bring_up, r, deadline) for r in members]
                for future in concurrent.futures.as_completed(futures):
                    try:
                        future.result()
                    except (BootError, Untranslatable) as exc:
                        if not str(exc).startswith("cancelled"):
                            errors.append(exc)
                        self.cancel.set()
            except BaseException:  # a test timeout, ^C: the pods' threads stop at once
                self.cancel.set()
                raise
            finally:
                pool.shutdown(wait=True)
            if errors:
                raise errors[0]
            self.timings[phase] = time.monotonic() - phase_started
            self.log(f"phase {phase}: done in {self.timings[phase]:.1f} s")
        self.timings["boot"] = time.monotonic() - started
        self.note(
            "order: the data tier, then the Jobs to completion, then the rest together; "
            "Kubernetes starts everything at once and relies on retries (the Job's back-off, "
            "the wait-for-migrations init containers)"
        )
        self.note(
            "probes: startup, then readiness, run from the host to the pod's address as the "
            "kubelet runs them from the node (exec through docker exec); liveness once after "
            "the boot; preStop hooks and graceful termination are not exercised (teardown kills)"
        )
        self.note(
            "not translated (one node, no scheduler): affinity, topologySpreadConstraints, "
            "resource requests (as cpu shares they starve the pods beside the engine's other "
            "containers), terminationGracePeriodSeconds, rollout strategies, minReadySeconds"
        )
        self.note(
            "the runtime: Docker's default seccomp profile for RuntimeDefault (containerd's is "
            "much the same); the engine's file descriptor limit (nginx's worker_rlimit_nofile "
            "65535 above it logs an alert here, containerd's 1048576 allows it); no service "
            "account token (every pod sets automountServiceAccountToken: false, checked)"
        )

    def check_liveness(self):
        """Every liveness probe passes once, and every container is still running."""
        for running in self.pods.values():
            if running.pod.workload.kind == "Job":
                continue
            states = self.inspect_states(running)
            for spec in running.pod.spec["containers"]:
                state = running.containers[spec["name"]]
                is_running, code, oom = states[state.cid]
                if not is_running:
                    raise self.diagnose(running, f"{spec['name']} stopped (exit {code}, OOM {oom})")
                if "livenessProbe" in spec:
                    passed, detail = self.probe(running, state, "livenessProbe")
                    if not passed:
                        raise self.diagnose(running, f"liveness probe of {spec['name']}: {detail}")

    def restarts(self):
        return {
            f"{r.pod.name}/{name}": s.restarts
            for r in self.pods.values()
            for name, s in r.containers.items()
            if s.restarts
        }

    def endpoints(self, service_name, port):
        """[(address, target port)] of the ready pods behind Service `service_name`:`port`."""
        service = translate.one(self.docs, "Service", service_name)
        (spec,) = [p for p in service["spec"]["ports"] if p["port"] == port] or [None]
        if spec is None:
            raise BootError(f"Service {service_name} has no port {port}")
        return [(r.ip, self.target_port(r, spec)) for r in self.endpoint_pods(service)]

    def exec(self, pod_name, container, *command, timeout=30):
        state = self.pods[pod_name].containers[container]
        return self.run("exec", state.cid, *command, timeout=timeout).stdout

    def pods_of(self, workload):
        return [r for r in self.pods.values() if r.pod.workload.name == workload]


def translate_selects(selector, labels):
    return all(labels.get(k) == v for k, v in selector.items())


def set_ownership(path, fs_group, read_only):
    """The kubelet's SetVolumeOwnership: group fsGroup, group-readable (and writable unless
    read-only), directories setgid, nothing done without fsGroup."""
    if fs_group is None:
        return
    mask = 0o440 if read_only else 0o660
    for root, dirs, files in os.walk(path):
        for name in [*dirs, *files, None]:
            target = Path(root) if name is None else Path(root) / name
            os.lchown(target, -1, fs_group)
            if target.is_symlink():
                continue
            mode = target.stat().st_mode & 0o7777
            if target.is_dir():
                mode |= 0o2000 | 0o110
            os.chmod(target, mode | mask)


def write_atomic_volume(path, files):
    """A ConfigMap or Secret volume in the kubelet's atomic-writer layout: the files in a
    timestamped folder, `..data` pointing at it, each top-level name a link through `..data`."""
    stamp = time.strftime("..%Y_%m_%d_%H_%M_%S.000000001", time.gmtime())
    path.mkdir()
    os.chmod(path, 0o777)  # noqa: S103 - the kubelet's (mounted read-only)
    data = path / stamp
    data.mkdir()
    os.chmod(data, 0o755)  # noqa: S103 - as the kubelet's atomic writer makes it
    tops = set()
    for item in files:
        target = data / item.path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(item.content)
        os.chmod(target, item.mode)
        tops.add(item.path.split("/", 1)[0])
    (path / "..data").symlink_to(stamp)
    for top in sorted(tops):
        (path / top).symlink_to(f"..data/{top}")
