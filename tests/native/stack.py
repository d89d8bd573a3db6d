"""The production topology as processes on loopback ports, started by the product's own scripts.

nginx (nginx/start-nginx) -> uWSGI or gunicorn (services/chat/bin/start-web) for pages and
Daphne (start-ws) for /ws/ -> redis-server and a throw-away Postgres (tests/servers.py), after
start-migrate and collectstatic. Every process is started by us, logs to its own file, and is
stopped by its PID; `Proc.tail()` is what failure messages quote.
"""

import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

from tests import servers
from tests.functional import http_get

REPO = Path(__file__).resolve().parents[2]
SERVICE = REPO / "services" / "chat"
BIN = SERVICE / "bin"
VENV_BIN = REPO / ".venv" / "bin"
NGINX_CONF = REPO / "nginx" / "conf"
START_NGINX = REPO / "nginx" / "start-nginx"

READY_TIMEOUT = 60  # seconds to answer /readyz: cold imports on 2 busy cores took up to 30

# Every process started in this session, newest last: quoted when a test fails.
STARTED = []


class Proc:
    """One server process we started: log file, readiness, stop by PID, tail for messages."""

    def __init__(self, name, args, env, logdir, cwd=None, **ports):
        self.name = name
        self.args = [str(a) for a in args]
        self.env = env
        self.cwd = cwd
        self.log = Path(logdir) / f"{name}.log"
        self.popen = None
        self.started_at = None
        for key, value in ports.items():
            setattr(self, key, value)

    def start(self):
        with self.log.open("a") as log:
            log.write(f"--- start {' '.join(self.args)}\n")
            log.flush()
            self.popen = subprocess.Popen(
                self.args,
                env=self.env,
                cwd=self.cwd,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        self.started_at = time.monotonic()
        STARTED.append(self)
        return self

    @property
    def pid(self):
        return self.popen.pid

    def alive(self):
        return self.popen is not None and self.popen.poll() is None

    def signal(self, signum):
        if self.alive():
            self.popen.send_signal(signum)

    def wait(self, timeout):
        """The exit status within `timeout` s; AssertionError (with the log) if still running."""
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(
                f"expected {self.name} (pid {self.pid}) to exit within {timeout} s; it still runs"
                f"\n{self.tail()}"
            ) from None

    def stop(self, timeout=10):
        """SIGTERM, then SIGKILL after `timeout`; the exit status."""
        if self.popen is None:
            return None
        if self.alive():
            servers.stop(self.popen, timeout)
        return self.popen.returncode

    def tail(self, lines=40):
        try:
            text = self.log.read_text(errors="replace").splitlines()[-lines:]
        except OSError as exc:
            return f"--- {self.name}: no log ({exc})"
        return f"--- last {len(text)} lines of {self.log}\n" + "\n".join(text)

    def wait_http(self, url, timeout=READY_TIMEOUT, status=200):
        """Poll `url` until `status`; the failure names the process, its exit status and log."""
        deadline = time.monotonic() + timeout
        last = "no answer yet"
        while True:
            if not self.alive():
                raise AssertionError(
                    f"expected {self.name} to serve {url}; it exited with status "
                    f"{self.popen.returncode}\n{self.tail()}"
                )
            try:
                response = http_get(url, timeout=2.0)
                if response.status == status:
                    return response
                last = f"HTTP {response.status}: {response.text[:200]!r}"
            except OSError as exc:  # refused, reset, timed out: not up yet
                last = f"{type(exc).__name__}: {exc}"
            if time.monotonic() >= deadline:
                raise AssertionError(
                    f"waited {timeout} s for {self.name} to answer {status} at {url}; "
                    f"last: {last}\n{self.tail()}"
                )
            time.sleep(0.2)


def _path():
    system = os.environ.get("PATH") or "/usr/local/bin:/usr/bin:/bin"
    return os.pathsep.join([str(VENV_BIN), system, "/usr/sbin", "/sbin"])


class Stack:
    """Starts the roles on free loopback ports with one production environment."""

    def __init__(self, root, database_url, redis):
        self.root = Path(root)
        self.logs = self.root / "logs"
        self.logs.mkdir(exist_ok=True)
        self.static = self.root / "static"
        self.redis = redis
        self.env = {
            # Only what the product reads, plus what a shell needs: no leakage from the caller.
            "PATH": _path(),
            "HOME": os.environ.get("HOME", "/root"),
            "LANG": "C.UTF-8",
            "PYTHONUNBUFFERED": "1",
            "DJANGO_ENV": "production",
            "DJANGO_SECRET_KEY": secrets.token_hex(32),
            "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
            "DATABASE_URL": database_url,
            "REDIS_URL": redis.url,
            "DJANGO_SECURE_SSL_REDIRECT": "false",
            "DJANGO_SECURE_COOKIES": "false",
            "DJANGO_STATIC_ROOT": str(self.static),
            "WS_DRAIN_SECONDS": "2",
        }
        # The one setting taken from the caller: scripts/test's native tier reruns the ws tests
        # with WS_RUNTIME_OVERRIDES=none (the stock Daphne/Channels paths).
        if "WS_RUNTIME_OVERRIDES" in os.environ:
            self.env["WS_RUNTIME_OVERRIDES"] = os.environ["WS_RUNTIME_OVERRIDES"]
        self.names = set()

    def _name(self, name):
        if name in self.names:
            raise ValueError(f"expected a new process name, found {name!r} again")
        self.names.add(name)
        return name

    def run(self, name, args, timeout=120):
        """Run a one-shot command (collectstatic, start-migrate); fail with its output."""
        log = self.logs / f"{self._name(name)}.log"
        with log.open("w") as out:
            done = subprocess.run(
                [str(a) for a in args],
                env=self.env,
                cwd=SERVICE,
                stdout=out,
                stderr=subprocess.STDOUT,
                timeout=timeout,
                check=False,
            )
        assert done.returncode == 0, (
            f"expected {name} to exit 0, found {done.returncode}\n{log.read_text()[-3000:]}"
        )
        return log.read_text()

    def collectstatic(self):
        self.static.mkdir(exist_ok=True)
        output = self.run("collectstatic", ["python", "manage.py", "collectstatic", "--noinput"])
        # nginx's workers run as `nobody` when the master is root: the files must be readable.
        for path in [self.static, *self.static.rglob("*")]:
            path.chmod(0o755 if path.is_dir() else 0o644)
        return output

    def web(self, name="web", http_server="uwsgi", **extra):
        """start-web (not yet started): the app port for nginx, HTTP probes on probe_port."""
        port, probe = servers.free_port(), servers.free_port()
        metrics_dir = self.root / f"prometheus-{name}"
        env = {
            **self.env,
            "HTTP_SERVER": http_server,
            "WEB_PORT": str(port),
            "PROBE_PORT": str(probe),
            # start-web empties this directory: each web process needs its own.
            "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
            **extra,
        }
        proc = Proc(self._name(name), [BIN / "start-web"], env, self.logs, port=port)
        proc.probe_port = probe
        proc.ready_url = f"http://127.0.0.1:{probe}/readyz"
        return proc

    def ws(self, name="ws", port=None, **extra):
        """start-ws (not yet started) on `port` (or a free one); probes on the same port."""
        port = port or servers.free_port()
        env = {**self.env, "WS_PORT": str(port), **extra}
        proc = Proc(self._name(name), [BIN / "start-ws"], env, self.logs, port=port)
        proc.probe_port = port
        proc.ready_url = f"http://127.0.0.1:{port}/readyz"
        proc.base_url = f"http://127.0.0.1:{port}"
        return proc

    def nginx(self, name, web, ws, http_server="uwsgi", **extra):
        """start-nginx (not yet started) in front of `web` and `ws` (Procs or host:port)."""
        port, status_port = servers.free_port(), servers.free_port()
        run_dir = self.root / name
        run_dir.mkdir()
        run_dir.chmod(0o755)  # workers (`nobody`) read the rendered files and write temp dirs
        env = {
            **self.env,
            "NGINX_CONF_DIR": str(NGINX_CONF),
            "NGINX_RUN_DIR": str(run_dir),
            "NGINX_STATIC_ROOT": str(self.static),
            "NGINX_PORT": str(port),
            "NGINX_STATUS_PORT": str(status_port),  # the internal listener
            "WEB_UPSTREAM": web if isinstance(web, str) else f"127.0.0.1:{web.port}",
            "WS_UPSTREAM": ws if isinstance(ws, str) else f"127.0.0.1:{ws.port}",
            "HTTP_SERVER": http_server,
            "NGINX_RESOLVER": "127.0.0.1",
            **extra,
        }
        proc = Proc(self._name(name), ["sh", START_NGINX], env, self.logs, port=port)
        proc.run_dir = run_dir
        proc.base_url = f"http://127.0.0.1:{port}"
        proc.status_url = f"http://127.0.0.1:{status_port}"
        proc.ready_url = f"{proc.base_url}/nginx-health"
        return proc


def start_all(procs, timeout=READY_TIMEOUT):
    """Start the processes together (imports overlap), then wait for each one's ready_url."""
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.wait_http(proc.ready_url, timeout)
    return procs


def get(url, **kwargs):
    """http_get with a short default timeout, for probes in tests."""
    kwargs.setdefault("timeout", 5.0)
    return http_get(url, **kwargs)


def stop_started():
    """Stop every process this session started, by PID: all signalled at once (each drains or
    finishes its requests in parallel), then each awaited, SIGKILL after 10 s."""
    procs = list(dict.fromkeys(reversed(STARTED)))
    for proc in procs:
        with contextlib.suppress(Exception):
            proc.signal(signal.SIGTERM)
    for proc in procs:
        with contextlib.suppress(Exception):
            proc.stop()


@contextlib.contextmanager
def native_stack():
    """The session's stack: Postgres, Redis, migrate, web, two ws, two nginx (a namespace)."""
    root = Path(tempfile.mkdtemp(prefix="chat-native-"))
    root.chmod(0o755)  # nginx workers (`nobody`) traverse it to the static files
    try:
        with contextlib.ExitStack() as cleanup:
            pg = cleanup.enter_context(servers.postgres_server())
            database_url = pg.create_database("chat")
            (root / "redis").mkdir()
            redis = servers.Redis(root / "redis", password=secrets.token_hex(16))
            cleanup.callback(redis.stop)
            redis.start()
            cleanup.callback(stop_started)  # runs first: the servers go before their databases
            stack = Stack(root, database_url, redis)
            stack.collectstatic()
            stack.run("migrate", [BIN / "start-migrate"])
            web, ws1, ws2 = stack.web("web"), stack.ws("ws1"), stack.ws("ws2")
            start_all([web, ws1, ws2])
            # nginx: the front door (ws -> ws1), and a second one in front of ws2, so the
            # drain scenario's clients fail over through nginx as they would in production.
            front, front_b = stack.nginx("nginx", web, ws1), stack.nginx("nginx-b", web, ws2)
            start_all([front, front_b])
            yield SimpleNamespace(
                stack=stack,
                pg=pg,
                redis=redis,
                web=web,
                ws1=ws1,
                ws2=ws2,
                nginx=front,
                nginx_b=front_b,
            )
    finally:
        shutil.rmtree(root, ignore_errors=True)
