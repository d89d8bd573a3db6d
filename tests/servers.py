"""Real servers for tests: redis-server (alone, or a Sentinel group started by the product's own
redis/redis-ha.sh) and a throw-away PostgreSQL cluster, on loopback ports.

Each is a context manager that starts the process, waits (with a deadline) until it answers,
and stops it by PID on exit. Nothing here is a mock: these are the servers the product ships with.
"""

import contextlib
import os
import pwd
import random
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path


def free_port():
    """A TCP port on 127.0.0.1 that nothing listens on right now, below the kernel's ephemeral
    range: a port the kernel hands out (bind to 0) can be taken by any outgoing connection
    before our server binds it (a stack's nginx once lost its port to a test client that way)."""
    low = _ephemeral_low()
    for _ in range(200):
        port = random.randrange(max(1024, low - 12000), low)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"expected a free port below {low}, found none in 200 tries")


def _ephemeral_low():
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def wait_for(predicate, timeout, what, interval=0.05):
    """Poll `predicate` until truthy; fail after `timeout` seconds naming what was awaited."""
    deadline = time.monotonic() + timeout
    last_error = None
    while time.monotonic() < deadline:
        try:
            result = predicate()
            if result:
                return result
        except Exception as exc:  # noqa: BLE001 - remembered for the failure message
            last_error = exc
        time.sleep(interval)
    raise TimeoutError(f"waited {timeout} s for {what}; last error: {last_error!r}")


def port_open(port, host="127.0.0.1"):
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
        return True
    return False


def require(binary, package):
    path = shutil.which(binary) or (
        next(Path("/usr/lib/postgresql").glob(f"*/bin/{binary}"), None)
        if Path("/usr/lib/postgresql").exists()
        else None
    )
    if not path:
        raise RuntimeError(f"{binary} not found: install the Debian package {package}")
    return str(path)


def stop(proc, timeout=10):
    """SIGTERM the process we started, then SIGKILL after `timeout`."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


class Redis:
    """A redis-server on a fixed loopback port (no persistence); stop() and start() for faults.

    The port and password stay the same across restarts, so clients configured with .url can
    reconnect to the new process.
    """

    def __init__(self, root, password=None, port=None):
        self.binary = require("redis-server", "redis-server")
        self.root = Path(root)
        self.password = password
        self.port = port or free_port()
        self.proc = None
        self.log = self.root / "redis.log"

    @property
    def url(self):
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def start(self, timeout=10):
        args = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
        args += ["--dir", str(self.root), "--appendonly", "no"]
        args += ["--requirepass", self.password] if self.password else []
        with self.log.open("a") as log:
            self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        wait_for(
            lambda: self.proc.poll() is None and port_open(self.port),
            timeout,
            f"redis-server on port {self.port} (log {self.log})",
        )
        return self

    def stop(self):
        if self.proc is not None:
            stop(self.proc)
            # Returned only once nothing listens: a start() right after gets the same port.
            wait_for(lambda: not port_open(self.port), 10, f"port {self.port} to close")


@contextlib.contextmanager
def redis_server(password=None):
    """Yield a redis:// URL of a fresh redis-server on a free loopback port (no persistence)."""
    with tempfile.TemporaryDirectory(prefix="redis-") as tmp:
        server = Redis(tmp, password).start()
        try:
            yield server.url
        finally:
            server.stop()


ROOT = Path(__file__).resolve().parents[1]


class SentinelGroup:
    """A primary, a replica and three Sentinels on loopback, each started by redis/redis-ha.sh
    (the script compose.ha.yaml and k8s/components/redis-ha run), as one master `name`.

    kill_primary() SIGKILLs the current primary; the Sentinels promote the replica.
    """

    def __init__(self, root, name="chat", password="ha-test-password", down_after_ms=1000):  # noqa: S107
        require("redis-server", "redis-server")
        self.root = Path(root)
        self.name = name
        self.password = password
        self.down_after_ms = down_after_ms
        self.data_ports = [free_port(), free_port()]
        self.sentinel_ports = [free_port(), free_port(), free_port()]
        self.procs = {}  # port -> Popen

    @property
    def sentinels(self):
        return [("127.0.0.1", port) for port in self.sentinel_ports]

    def _env(self, **extra):
        return {
            **os.environ,
            "REDIS_PASSWORD": self.password,
            "REDIS_ANNOUNCE_HOST": "127.0.0.1",
            "REDIS_INITIAL_PRIMARY": f"127.0.0.1:{self.data_ports[0]}",
            "REDIS_SENTINELS": ",".join(f"127.0.0.1:{p}" for p in self.sentinel_ports),
            "REDIS_MASTER_NAME": self.name,
            "SENTINEL_DOWN_AFTER_MS": str(self.down_after_ms),
            "REDIS_BIND": "127.0.0.1",
            **extra,
        }

    def _start(self, port, role, **extra):
        workdir = self.root / str(port)
        workdir.mkdir(parents=True, exist_ok=True)
        log = (workdir / "log").open("a")
        self.procs[port] = subprocess.Popen(
            ["sh", str(ROOT / "redis" / "redis-ha.sh"), role],
            cwd=workdir,
            env=self._env(REDIS_HA_DIR=str(workdir), **extra),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        wait_for(
            lambda: self.procs[port].poll() is None and port_open(port),
            10,
            f"redis-ha.sh {role} on port {port} (log {workdir / 'log'})",
        )

    def start_data_node(self, port):
        self._start(port, "server", REDIS_PORT=str(port))

    def start(self):
        for port in self.data_ports:
            self.start_data_node(port)
        for port in self.sentinel_ports:
            self._start(port, "sentinel", SENTINEL_PORT=str(port))
        wait_for(self._settled, 30, f"3 Sentinels agreeing on {self.name} with a replica")
        return self

    def ask(self, port, *command):
        import redis

        client = redis.Redis(port=port, password=self.password, socket_timeout=2)
        try:
            return client.execute_command(*command)
        finally:
            client.close()

    def primary_port(self):
        """The primary's port as the first Sentinel that answers says."""
        for port in self.sentinel_ports:
            with contextlib.suppress(Exception):
                return int(self.ask(port, "SENTINEL", "get-master-addr-by-name", self.name)[1])
        raise AssertionError("expected a Sentinel to answer, found none")

    def _settled(self):
        for port in self.sentinel_ports:
            if len(self.ask(port, "SENTINEL", "sentinels", self.name)) != 2:
                return False
            replicas = self.ask(port, "SENTINEL", "replicas", self.name)
            if not any(
                r[b"flags"] == b"slave" and r[b"master-link-status"] == b"ok" for r in replicas
            ):
                return False
        return True

    def kill(self, port):
        """SIGKILL one member (a data node or a Sentinel) by its port."""
        proc = self.procs.pop(port)
        proc.kill()
        proc.wait(5)

    def stop(self):
        for proc in self.procs.values():
            stop(proc, timeout=5)
        self.procs.clear()


@contextlib.contextmanager
def sentinel_group(**kwargs):
    """Yield a started SentinelGroup; every member is stopped afterwards."""
    with tempfile.TemporaryDirectory(prefix="redis-ha-") as tmp:
        group = SentinelGroup(tmp, **kwargs)
        try:
            yield group.start()
        finally:
            group.stop()


class Postgres:
    """A throw-away cluster (initdb + pg_ctl) on a loopback port; stop() and start() for faults."""

    def __init__(self, root):
        self.root = Path(root)
        self.data = self.root / "data"
        self.port = free_port()
        self.password = "test-password"
        self.initdb = require("initdb", "postgresql")
        self.pg_ctl = require("pg_ctl", "postgresql")
        # initdb refuses to run as root; CI runs as root, so the cluster belongs to `postgres`.
        self.user = None
        if os.geteuid() == 0:
            try:
                self.user = pwd.getpwnam("postgres")
            except KeyError:
                raise RuntimeError(
                    "running as root needs the `postgres` user (Debian package postgresql)"
                ) from None

    def _run(self, *args):
        cmd = list(args)
        kwargs = {"check": True, "capture_output": True, "text": True, "timeout": 60}
        if self.user:
            kwargs.update(user=self.user.pw_uid, group=self.user.pw_gid, extra_groups=[])
        try:
            return subprocess.run(cmd, cwd=self.root, **kwargs)
        except subprocess.CalledProcessError as exc:
            raise RuntimeError(f"{cmd[0]} failed: {exc.stdout}{exc.stderr}") from None

    def init(self):
        self.root.mkdir(parents=True, exist_ok=True)
        if self.user:
            os.chown(self.root, self.user.pw_uid, self.user.pw_gid)
        pwfile = self.root / "pw"
        pwfile.write_text(self.password + "\n")
        if self.user:
            os.chown(pwfile, self.user.pw_uid, self.user.pw_gid)
        self._run(
            self.initdb,
            "-D",
            str(self.data),
            "-U",
            "chat",
            f"--pwfile={pwfile}",
            "-A",
            "scram-sha-256",
            "-E",
            "UTF8",
            "--locale=C.UTF-8",
        )
        return self

    def start(self):
        opts = (
            f"-c listen_addresses=127.0.0.1 -p {self.port} "
            f"-c unix_socket_directories={self.root} -c fsync=off"
        )
        log = str(self.root / "log")
        self._run(self.pg_ctl, "-D", str(self.data), "-o", opts, "-l", log, "-w", "start")

    def stop(self, mode="fast"):
        self._run(self.pg_ctl, "-D", str(self.data), "-m", mode, "-w", "stop")

    @property
    def url(self):
        return f"postgres://chat:{self.password}@127.0.0.1:{self.port}/postgres"

    def create_database(self, name):
        import psycopg

        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url.rsplit("/", 1)[0] + f"/{name}"


@contextlib.contextmanager
def postgres_server():
    """Yield a started Postgres (see .url); the cluster is deleted afterwards."""
    with tempfile.TemporaryDirectory(prefix="pg-") as tmp:
        pg = Postgres(tmp).init()
        pg.start()
        try:
            yield pg
        finally:
            with contextlib.suppress(Exception):
                pg.stop("immediate")
