#!/usr/bin/env python3
"""Run one benchmark scenario against the baseline and our service, side by side, natively.

usage: .venv/bin/python bench/run.py SCENARIO [options]

scenarios (issue 6):
  fanout   one room, 2 senders, 10/100/500/2000 receivers, as fast as the server takes it
  rate     500 receivers, 2000 deliveries/s for 60 s, through nginx (latency under load)
  idle     N idle WebSockets on one Daphne process, RSS per connection
  idlecost RSS per idle connection: the tutorial baseline and ours
  http     the room page: nginx -> uWSGI (ours) vs Daphne (baseline), with wrk
  scale    1/2/4 ws replicas behind nginx, 500 receivers as fast as possible
  smoke    a 10-second check that every stack starts and relays
  capacity the data tier's unit costs (docs/CAPACITY.md): Postgres CPU per stored message,
           redis-server CPU per chat broadcast with 1 and several subscribed ws processes

Each run starts what it needs (redis-server, a throw-away PostgreSQL cluster, Daphne, uWSGI,
nginx) on free loopback ports, measures, and stops every process it started by PID. Results are
appended as JSON lines to bench/results/<scenario>.jsonl (one object per measurement, with the
session id, git commit and stack); bench/report.py turns them into tables and plots.

Stacks: baseline (bench/baseline, the tutorial), ours-pubsub and ours-core (services/chat with
CHANNEL_LAYER=pubsub / core, DJANGO_ENV=production). Our per-connection rate limit is raised for
load runs (CHAT_RATE_PER_SECOND/CHAT_RATE_BURST), since 2 senders deliberately exceed it.
"""

import argparse
import contextlib
import datetime
import json
import os
import pwd
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from wsload import children, tree_cpu  # bench/wsload.py: /proc CPU of a process tree

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
# BENCH_SERVICE: a copy of services/chat to measure instead (e.g. `git archive` of a commit while
# the tree is being edited); recorded in each idle line as "service".
SERVICE = Path(os.environ.get("BENCH_SERVICE") or ROOT / "services" / "chat")
BASELINE = BENCH / "baseline"
RESULTS = BENCH / "results"
VENV = ROOT / ".venv" / "bin"
PY = str(VENV / "python")
SESSION = os.environ.get("BENCH_SESSION") or datetime.datetime.now(datetime.UTC).strftime(
    "%Y%m%dT%H%M%SZ"
)


def log(msg):
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def die(msg):
    log(f"error: {msg}")
    sys.exit(1)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_open(port):
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
        return True
    return False


def wait_for(pred, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.05)
    die(f"waited {timeout} s for {what}")


def git_rev():
    def git(*a):
        return subprocess.run(["git", *a], cwd=ROOT, capture_output=True, text=True).stdout.strip()

    dirty = bool(git("status", "--porcelain", "--", "services", "nginx", "bench/baseline"))
    return git("rev-parse", "--short", "HEAD") + ("+dirty" if dirty else "")


class Procs:
    """Processes this run started; stopped by PID, newest first."""

    def __init__(self, rundir):
        self.rundir = rundir
        self.started = []

    def start(self, name, argv, env=None, cwd=None, port=None, timeout=30, user=None):
        logf = open(self.rundir / f"{name}.log", "ab")
        kw = {}
        if user is not None:
            kw.update(user=user.pw_uid, group=user.pw_gid, extra_groups=[])
        proc = subprocess.Popen(
            argv,
            env=env,
            cwd=cwd,
            stdout=logf,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            **kw,
        )
        self.started.append((name, proc, logf))
        if port:
            deadline = time.monotonic() + timeout
            while not port_open(port):
                if proc.poll() is not None or time.monotonic() > deadline:
                    tail = (self.rundir / f"{name}.log").read_text(errors="replace")[-3000:]
                    die(f"{name} did not listen on {port}; log tail:\n{tail}")
                time.sleep(0.05)
        return proc

    def stop(self, proc, timeout=10):
        for item in list(self.started):
            if item[1] is proc:
                self._stop(*item, timeout)
                self.started.remove(item)

    def _stop(self, name, proc, logf, timeout):
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        logf.close()

    def stop_all(self):
        while self.started:
            self._stop(*self.started.pop(), 10)


# -- servers ------------------------------------------------------------------------------------


def start_redis(procs):
    port = free_port()
    procs.start(
        "redis",
        [
            "redis-server",
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(procs.rundir),
            "--maxclients",
            "10000",
        ],
        port=port,
    )
    return port, procs.started[-1][1].pid


class Postgres:
    """A throw-away cluster for our service (initdb refuses root: it runs as `postgres`)."""

    def __init__(self, procs):
        self.procs = procs
        self.dir = Path(tempfile.mkdtemp(prefix="bench-pg-"))
        self.port = free_port()
        self.user = pwd.getpwnam("postgres") if os.geteuid() == 0 else None

    def _run(self, *argv):
        kw = (
            {"user": self.user.pw_uid, "group": self.user.pw_gid, "extra_groups": []}
            if (self.user)
            else {}
        )
        subprocess.run(argv, check=True, capture_output=True, timeout=120, **kw)

    def start(self):
        if self.user:
            os.chown(self.dir, self.user.pw_uid, self.user.pw_gid)
        pw = self.dir / "pw"
        pw.write_text("bench\n")
        if self.user:
            os.chown(pw, self.user.pw_uid, self.user.pw_gid)
        self._run(
            "initdb",
            "-D",
            str(self.dir / "data"),
            "-U",
            "chat",
            f"--pwfile={pw}",
            "-A",
            "scram-sha-256",
            "-E",
            "UTF8",
            "--locale=C.UTF-8",
        )
        # fsync stays on: the database is part of what our service pays per message.
        opts = (
            f"-c listen_addresses=127.0.0.1 -p {self.port} -c unix_socket_directories="
            f"{self.dir} -c max_connections=300"
        )
        self._run(
            "pg_ctl",
            "-D",
            str(self.dir / "data"),
            "-o",
            opts,
            "-l",
            str(self.dir / "log"),
            "-w",
            "start",
        )
        return f"postgres://chat:bench@127.0.0.1:{self.port}/postgres"

    def pid(self):
        """The postmaster's PID (the first line of postmaster.pid): its tree is the cluster."""
        return int((self.dir / "data" / "postmaster.pid").read_text().split()[0])

    def stop(self):
        with contextlib.suppress(Exception):
            self._run("pg_ctl", "-D", str(self.dir / "data"), "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.dir, ignore_errors=True)


class Env:
    """Shared state of one run.py invocation: process list, Postgres (started on first use)."""

    def __init__(self, args):
        self.args = args
        self.rundir = Path(tempfile.mkdtemp(prefix=f"bench-{SESSION}-"))
        self.procs = Procs(self.rundir)
        self.pg = None
        self.pg_url = None
        self.migrated = False

    def database(self):
        if self.pg is None:
            log("postgres: initdb + start (throw-away cluster)")
            self.pg = Postgres(self.procs)
            self.pg_url = self.pg.start()
        return self.pg_url

    def close(self):
        self.procs.stop_all()
        if self.pg:
            self.pg.stop()
        if not self.args.keep:
            shutil.rmtree(self.rundir, ignore_errors=True)


def ours_env(env, redis_port, layer, extra=None):
    e = dict(os.environ)
    e.update(
        DJANGO_ENV="production",
        DJANGO_SECRET_KEY="bench-only-" + "k" * 50,
        DJANGO_ALLOWED_HOSTS="127.0.0.1,localhost",
        DATABASE_URL=env.database(),
        REDIS_URL=f"redis://127.0.0.1:{redis_port}/0"
        + (f"?{env.args.redis_query}" if env.args.redis_query else ""),
        CHANNEL_LAYER=layer,
        # Load runs: 2 senders send far above the per-connection default (10/s, burst 30).
        CHAT_RATE_PER_SECOND="1000000",
        CHAT_RATE_BURST="1000000",
        # ...and every sender is one client address (127.0.0.1).
        CHAT_ADDRESS_RATE_PER_SECOND="1000000",
        CHAT_ADDRESS_RATE_BURST="1000000",
        # Plain-HTTP loopback benchmark: no HTTPS redirect (nginx would terminate TLS).
        DJANGO_SECURE_SSL_REDIRECT="false",
        DJANGO_STATIC_ROOT=str(env.rundir / "static"),
        PYTHONDONTWRITEBYTECODE="1",
    )
    e.update(extra or {})
    e.update(dict(kv.split("=", 1) for kv in env.args.ours_env or []))
    if e.get("BENCH_REDIS_QUERY"):
        e["REDIS_URL"] += ("&" if "?" in e["REDIS_URL"] else "?") + e["BENCH_REDIS_QUERY"]
    if not env.migrated:
        for cmd in (["migrate", "--noinput"], ["collectstatic", "--noinput"]):
            r = subprocess.run(
                [PY, "manage.py", *cmd],
                cwd=SERVICE,
                env=e,
                capture_output=True,
                text=True,
                timeout=300,
            )
            if r.returncode:
                die(f"{cmd[0]} failed:\n{r.stdout[-2000:]}{r.stderr[-3000:]}")
        env.migrated = True
    return e


# Named variants of our service: settings bench measured (docs/PERFORMANCE.md); "-tuned" is
# what we recommend for services/chat. (The runws patches once measured here are in the product;
# their copies: git show e19b588:bench/variants/runws_patched.py.)
TUNED = {
    "DATABASE_CONN_MAX_AGE": "60",
    # redis-py's pool raises MaxConnectionsError past 100 connections; the core layer needs more
    # when many clients connect at once (each handshake runs a group_add).
    "BENCH_REDIS_QUERY": "max_connections=1000",
}
VARIANTS = {"": {}, "tuned": TUNED}


def stack_parts(stack):
    """'ours-pubsub-tuned' -> ('pubsub', TUNED)."""
    _, layer, *variant = stack.split("-")
    return layer, VARIANTS["-".join(variant)]


def start_daphne(env, stack, redis_port, name, extra_env=None):
    """One ws process of a stack; returns (port, pid)."""
    port = free_port()
    if stack == "baseline":
        e = dict(
            os.environ,
            REDIS_URL=f"redis://127.0.0.1:{redis_port}/0",
            BASELINE_DB=str(env.rundir / "baseline.sqlite3"),
            PYTHONDONTWRITEBYTECODE="1",
        )
        argv = [str(VENV / "daphne"), "-b", "127.0.0.1", "-p", str(port), "mysite.asgi:application"]
        proc = env.procs.start(name, argv, env=e, cwd=BASELINE, port=port)
    else:
        layer, variant = stack_parts(stack)
        e = ours_env(env, redis_port, layer, {**variant, **(extra_env or {})})
        if (SERVICE / "chat/management/commands/runws.py").exists():
            argv = [PY, "manage.py", "runws", "--bind", "127.0.0.1", "--port", str(port)]
        else:
            argv = [
                str(VENV / "daphne"),
                "-b",
                "127.0.0.1",
                "-p",
                str(port),
                "-v",
                "0",
                "chatsite.asgi:application",
            ]
        proc = env.procs.start(name, argv, env=e, cwd=SERVICE, port=port)
    return port, proc.pid


WEB_TUNED = {"DATABASE_CONN_MAX_AGE": "60"}


def start_web(env, redis_port, kind, processes, threads, extra=None):
    """Our web role exactly as shipped: services/chat/bin/start-web with HTTP_SERVER=kind."""
    port, probe_port = free_port(), free_port()
    e = ours_env(env, redis_port, "pubsub", extra)
    e.update(
        HTTP_SERVER=kind,
        WEB_PORT=str(port),
        PROBE_PORT=str(probe_port),
        WEB_PROCESSES=str(processes),
        WEB_THREADS=str(threads),
        PROMETHEUS_MULTIPROC_DIR=str(env.rundir / f"prometheus-{port}"),
        PATH=f"{VENV}:{os.environ.get('PATH', '/usr/bin:/bin')}",
    )
    e.update(dict(kv.split("=", 1) for kv in env.args.ours_env or []))
    proc = env.procs.start(
        kind, ["bash", str(SERVICE / "bin" / "start-web")], env=e, cwd=SERVICE, port=port
    )
    return port, proc.pid


def start_uwsgi(env, redis_port, processes, threads, extra=None):
    """The stand-in uWSGI command line of earlier sessions (http server kind `uwsgi-standin`)."""
    port = free_port()
    e = ours_env(env, redis_port, "pubsub", extra)
    argv = [
        str(VENV / "uwsgi"),
        "--socket",
        f"127.0.0.1:{port}",
        "--module",
        "chatsite.wsgi:application",
        "--master",
        "--processes",
        str(processes),
        "--threads",
        str(threads),
        "--die-on-term",
        "--disable-logging",
        "--need-app",
        "--listen",
        "1024",
        "--chdir",
        str(SERVICE),
    ]
    proc = env.procs.start("uwsgi", argv, env=e, cwd=SERVICE, port=port)
    return port, proc.pid


NGINX_CONF = """\
# Minimal stand-in for the product's nginx/ config (same routes), written by bench/run.py.
worker_processes {workers};
pid {rundir}/nginx.pid;
error_log {rundir}/nginx-error.log warn;
user root;
worker_rlimit_nofile 20000;
events {{ worker_connections 19000; }}
http {{
    include /etc/nginx/mime.types;
    access_log {access_log};
    client_body_temp_path {rundir}/nginx-body;
    proxy_temp_path {rundir}/nginx-proxy;
    uwsgi_temp_path {rundir}/nginx-uwsgi;
    fastcgi_temp_path {rundir}/nginx-fcgi;
    scgi_temp_path {rundir}/nginx-scgi;
    keepalive_timeout 65;
    map $http_upgrade $connection_upgrade {{ default upgrade; '' close; }}
    upstream ws {{ {ws_servers} }}
    upstream web {{ server 127.0.0.1:{web_port}; {web_keepalive} }}
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        location /ws/ {{
            proxy_pass http://ws;
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $connection_upgrade;
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $remote_addr;
            proxy_read_timeout 3600s;
            proxy_buffering off;
        }}
        location /static/ {{ alias {rundir}/static/; expires 1y; }}
        location / {{ {web_location} }}
    }}
}}
"""


NGINX_SHIM = """#!/bin/sh
# bench/run.py: the product's nginx/start-nginx renders `listen <port>` (every interface); bind the
# benchmark's copy to 127.0.0.1 only, then run the real nginx. Nothing else in the config changes.
prev=
for a; do [ "$prev" = -c ] && dir=$(dirname "$a"); prev=$a; done
loopback='s/^([[:space:]]*listen )([0-9]+)([ ;])/\\1127.0.0.1:\\2\\3/'
[ -n "${dir:-}" ] && sed -i -E "$loopback" "$dir"/server-*.conf
exec %s "$@"
"""


def start_product_nginx(env, ws_port, web_port, web_proto):
    """The product's nginx (nginx/start-nginx + nginx/conf), per-IP limits raised for load."""
    port = free_port()
    run_dir = env.rundir / f"nginx-product-{port}"
    run_dir.mkdir()
    shim_dir = env.rundir / "nginx-shim"
    if not shim_dir.exists():
        shim_dir.mkdir()
        shim = shim_dir / "nginx"
        shim.write_text(NGINX_SHIM % shutil.which("nginx", path="/usr/sbin:/usr/bin:/sbin:/bin"))
        shim.chmod(0o755)
    # nginx's workers run as `nobody` when the master is root: they traverse the run directory.
    for d in (env.rundir, run_dir):
        d.chmod(0o755)
    e = dict(
        os.environ,
        PATH=f"{shim_dir}:{os.environ.get('PATH', '/usr/bin:/bin')}",
        NGINX_CONF_DIR=str(ROOT / "nginx" / "conf"),
        NGINX_RUN_DIR=str(run_dir),
        NGINX_STATIC_ROOT=str(env.rundir / "static"),
        NGINX_PORT=str(port),
        WEB_UPSTREAM=f"127.0.0.1:{web_port or ws_port}",
        WS_UPSTREAM=f"127.0.0.1:{ws_port}",
        HTTP_SERVER="uwsgi" if web_proto == "uwsgi" else "gunicorn",
        NGINX_RESOLVER="127.0.0.1",
        # Load from one client address: the abuse limits (100 sockets, 10 handshakes/s, 20
        # pages/s) are raised.
        NGINX_WS_CONN_PER_IP="20000",
        NGINX_WS_HANDSHAKES_PER_SEC="100000",
        NGINX_WS_HANDSHAKE_BURST="100000",
        NGINX_REQ_PER_SEC="100000",
        NGINX_REQ_BURST="100000",
    )
    proc = env.procs.start("nginx", ["sh", str(ROOT / "nginx" / "start-nginx")], env=e, port=port)
    time.sleep(0.3)
    return port, proc


def start_nginx(env, ws_ports, web_port, web_proto, workers=1, access_log=False):
    if getattr(ARGS, "product_nginx", False):
        if len(ws_ports) != 1:
            die("the product nginx proxies to one ws address (DNS in production): use 1 replica")
        return start_product_nginx(env, ws_ports[0], web_port, web_proto)
    port = free_port()
    if web_proto == "uwsgi":
        web_location = "include /etc/nginx/uwsgi_params; uwsgi_pass web;"
        web_keepalive = ""
    else:
        web_location = (
            "proxy_pass http://web; proxy_http_version 1.1; "
            "proxy_set_header Connection ''; proxy_set_header Host $host;"
        )
        web_keepalive = "keepalive 32;"
    conf = NGINX_CONF.format(
        workers=workers,
        rundir=env.rundir,
        port=port,
        web_port=web_port or ws_ports[0],
        ws_servers=" ".join(f"server 127.0.0.1:{p};" for p in ws_ports),
        web_location=web_location,
        web_keepalive=web_keepalive,
        access_log=f"{env.rundir}/nginx-access.log" if access_log else "off",
    )
    path = env.rundir / f"nginx-{port}.conf"
    path.write_text(conf)
    proc = env.procs.start("nginx", ["nginx", "-c", str(path), "-g", "daemon off;"], port=port)
    time.sleep(0.2)
    return port, proc


# -- measurement ---------------------------------------------------------------------------------


def record(scenario, row):
    RESULTS.mkdir(exist_ok=True)
    row = {"session": SESSION, "commit": git_rev(), "scenario": scenario, **row}
    if row.get("stack", "").startswith("ours") and ARGS.variant:
        row["stack"] += "+" + ARGS.variant
    row["ours_env"] = ARGS.ours_env
    for key, var in (("service", "BENCH_SERVICE"), ("service_rev", "BENCH_SERVICE_REV")):
        if os.environ.get(var) and scenario != "idle":  # idle records them itself
            row.setdefault(key, os.environ[var])
    if "nginx" in row or scenario in ("http", "scale"):
        row["nginx_impl"] = "product" if ARGS.product_nginx else "stand-in"
    with open(RESULTS / f"{scenario}.jsonl", "a") as f:
        f.write(json.dumps(row) + "\n")
    return row


ARGS = argparse.Namespace(variant="", ours_env=None, product_nginx=False)
# py-spy lives in a separate venv (docs/PERFORMANCE.md: python3 -m venv /tmp/benchtools ...).
PYSPY = os.environ.get("PYSPY", "/tmp/benchtools/bin/py-spy")  # noqa: S108
PROFILE = {"dir": None, "tag": ""}


def wsload(args_list, timeout, pids=None, env=None):
    argv = [PY, str(BENCH / "wsload.py"), *args_list]
    spies = []
    if PROFILE["dir"] and pids:
        # py-spy samples the server while the load runs (collapsed stacks, bench/profile.py).
        for i, pid in enumerate(pids.get("daphne", [])):
            out = Path(PROFILE["dir"]) / f"{PROFILE['tag']}-ws{i}.txt"
            spies.append(
                subprocess.Popen(
                    [
                        PYSPY,
                        "record",
                        "--pid",
                        str(pid),
                        "--format",
                        "raw",
                        "--rate",
                        "250",
                        "--gil",
                        "--nonblocking",
                        "--output",
                        str(out),
                        "--duration",
                        str(int(timeout)),
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
    r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout + 60, env=env)
    for spy in spies:
        spy.send_signal(signal.SIGINT)
        with contextlib.suppress(subprocess.TimeoutExpired):
            spy.wait(20)
        if spy.poll() is None:
            spy.kill()
    if r.returncode or not r.stdout.strip():
        die(f"wsload failed ({r.returncode}): {r.stderr[-3000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def summary(res):
    keys = ("connections", "sent", "deliveries", "lost", "duplicated", "out_of_order")
    parts = [f"{k}={res.get(k)}" for k in keys if k in res]
    if "deliveries_per_s" in res:
        parts.append(f"d/s={res['deliveries_per_s']}")
        parts.append(f"d/cpu-s={res['deliveries_per_cpu_s']}")
        parts.append(f"p99={res['latency_ms']['p99']}ms")
    if "rss_per_connection_kb" in res:
        parts.append(f"rss/conn={res['rss_per_connection_kb']}KB")
    return " ".join(parts)


def messages_for(stack, receivers, budget):
    """Messages per sender so one run delivers about `budget` messages (bounded run time)."""
    per_sender = budget[stack if stack in budget else "ours"] / (receivers + 2) / 2
    return max(10, min(20000, int(per_sender)))


@contextlib.contextmanager
def ws_stack(
    env,
    stack,
    replicas=1,
    nginx=False,
    nginx_workers=1,
    extra_env=None,
    every_port=False,
    info=None,
):
    """redis + `replicas` Daphne processes (+ nginx); yields (url, pids).

    every_port: without nginx, url is a comma list, one per process (wsload rooms); info, a dict,
    receives the redis port and the ws ports."""
    redis_port, redis_pid = start_redis(env.procs)
    ports, pids = [], {"daphne": [], "redis": [redis_pid]}
    started_before = len(env.procs.started)
    for i in range(replicas):
        port, pid = start_daphne(env, stack, redis_port, f"{stack}-ws{i}", extra_env)
        ports.append(port)
        pids["daphne"].append(pid)
    port = ports[0]
    if nginx:
        port, ngx = start_nginx(env, ports, None, "http", workers=nginx_workers)
        pids["nginx"] = [ngx.pid, *children(ngx.pid)]
    if info is not None:
        info.update(redis_port=redis_port, ports=ports)
    if every_port and not nginx:
        url = ",".join(f"ws://127.0.0.1:{p}/ws/chat/{{room}}/" for p in ports)
    else:
        url = f"ws://127.0.0.1:{port}/ws/chat/{{room}}/"
    try:
        yield url, pids
    finally:
        while len(env.procs.started) > started_before - 1:
            env.procs._stop(*env.procs.started.pop(), 10)


def spy_on(tag, pid):
    """py-spy the process and its children (uWSGI/gunicorn workers) into --profile DIR."""
    out = Path(PROFILE["dir"]) / f"{tag}.txt"
    argv = [PYSPY, "record", "--pid", str(pid), "--subprocesses", "--format", "raw"]
    argv += ["--rate", "250", "--gil", "--nonblocking", "--output", str(out)]
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def stop_spy(spy):
    spy.send_signal(signal.SIGINT)
    with contextlib.suppress(subprocess.TimeoutExpired):
        spy.wait(20)
    if spy.poll() is None:
        spy.kill()


def profiled(tag, pids):
    PROFILE["tag"] = tag
    return pids


def pid_args(pids):
    return [f"--pid={name}={pid}" for name, plist in pids.items() for pid in plist]


def scenario_fanout(env, args):
    budget = {"baseline": args.baseline_budget, "ours": args.ours_budget}
    for receivers in args.receivers:
        for stack in args.stacks:
            msgs = messages_for(stack, receivers, budget)
            with ws_stack(env, stack, nginx=args.nginx) as (url, pids):
                res = wsload(
                    [
                        "fanout",
                        "--url",
                        url,
                        "--receivers",
                        str(receivers),
                        "--messages",
                        str(msgs),
                        "--window",
                        str(args.window),
                        "--procs",
                        str(args.procs),
                        "--timeout",
                        str(args.timeout),
                        "--room",
                        f"fan{receivers}",
                        *pid_args(pids),
                    ],
                    args.timeout,
                    profiled(f"fanout-{stack}-{receivers}", pids),
                )
            row = record("fanout", {"stack": stack, "nginx": args.nginx, "tag": args.tag, **res})
            log(f"fanout {stack} receivers={receivers}: {summary(row)}")


def scenario_rate(env, args):
    for stack, replicas in [(s, r) for s in args.stacks for r in args.replicas]:
        msgs = int(args.rate * args.duration / 2) + 1
        with ws_stack(env, stack, replicas=replicas, nginx=not args.direct) as (url, pids):
            res = wsload(
                [
                    "fanout",
                    "--url",
                    url,
                    "--receivers",
                    str(args.receivers[0]),
                    "--messages",
                    str(msgs),
                    "--rate",
                    str(args.rate),
                    "--procs",
                    str(args.procs),
                    "--timeout",
                    str(args.duration + 60),
                    "--room",
                    "rate",
                    *pid_args(pids),
                ],
                args.duration + 60,
                profiled(f"rate-{stack}", pids),
            )
        row = record(
            "rate", {"stack": stack, "replicas": replicas, "nginx": not args.direct, **res}
        )
        log(f"rate {stack} replicas={replicas}: {summary(row)} p50={row['latency_ms']['p50']}")


def scenario_scale(env, args):
    budget = {"baseline": args.baseline_budget, "ours": args.ours_budget}
    for stack in args.stacks:
        for replicas in args.replicas:
            receivers = args.receivers[0]
            msgs = messages_for(stack, receivers, budget)
            with ws_stack(
                env, stack, replicas=replicas, nginx=True, nginx_workers=args.nginx_workers
            ) as (url, pids):
                res = wsload(
                    [
                        "fanout",
                        "--url",
                        url,
                        "--receivers",
                        str(receivers),
                        "--messages",
                        str(msgs),
                        "--window",
                        str(args.window),
                        "--procs",
                        str(args.procs),
                        "--timeout",
                        str(args.timeout),
                        "--room",
                        "scale",
                        *pid_args(pids),
                    ],
                    args.timeout,
                )
            row = record("scale", {"stack": stack, "replicas": replicas, **res})
            log(f"scale {stack} replicas={replicas}: {summary(row)}")


def scenario_idle(env, args):
    for stack in args.stacks:
        extra = {}
        with ws_stack(env, stack, extra_env=extra) as (url, pids):
            time.sleep(1)
            res = wsload(
                [
                    "idle",
                    "--url",
                    url,
                    "--connections",
                    str(args.connections),
                    "--rooms",
                    str(args.rooms),
                    "--hold",
                    str(args.hold),
                    "--procs",
                    str(args.procs),
                    "--timeout",
                    str(args.timeout),
                    "--connect-wall",
                    str(args.timeout - args.hold - 5),
                    "--room",
                    "idle",
                    "--connect-concurrency",
                    str(args.connect_concurrency),
                    *pid_args({"daphne": pids["daphne"]}),
                ],
                args.timeout,
            )
        if os.environ.get("BENCH_SERVICE"):
            res["service"] = os.environ["BENCH_SERVICE"]
        if os.environ.get("BENCH_SERVICE_REV"):
            res["service_rev"] = os.environ["BENCH_SERVICE_REV"]
        row = record("idle", {"stack": stack, **res})
        log(f"idle {stack}: {summary(row)} connect/s={row['connect_per_s']}")


def scenario_idlecost(env, args):
    """Idle RSS per connection: the tutorial baseline, then our service. (The layer-by-layer apps
    once measured here: git show e19b588:bench/variants/idle_apps.py.)"""
    for app in args.apps:
        redis_port, _ = start_redis(env.procs)
        if app.startswith("ours"):
            port, pid = start_daphne(env, app, redis_port, app)
        elif app != "baseline":
            die(f"expected idlecost apps baseline or ours-*, found {app!r}")
        else:
            port = free_port()
            e = dict(
                os.environ,
                REDIS_URL=f"redis://127.0.0.1:{redis_port}/0",
                PYTHONDONTWRITEBYTECODE="1",
                BASELINE_DB=str(env.rundir / "baseline.sqlite3"),
            )
            argv = [
                str(VENV / "daphne"),
                "-b",
                "127.0.0.1",
                "-p",
                str(port),
                "-v",
                "0",
                "mysite.asgi:application",
            ]
            pid = env.procs.start(app, argv, env=e, cwd=BASELINE, port=port).pid
        time.sleep(1)
        res = wsload(
            [
                "idle",
                "--url",
                f"ws://127.0.0.1:{port}/ws/chat/{{room}}/",
                "--connections",
                str(args.connections),
                "--rooms",
                str(args.rooms),
                "--hold",
                str(args.hold),
                "--procs",
                str(args.procs),
                "--timeout",
                str(args.timeout),
                "--connect-wall",
                str(args.timeout - args.hold - 5),
                "--room",
                "idle",
                f"--pid=daphne={pid}",
            ],
            args.timeout,
        )
        row = record("idlecost", {"stack": app, **res})
        log(f"idlecost {app}: {summary(row)}")
        env.procs.stop_all()


def wrk(url, seconds, connections, threads, pids):
    """wrk against url; pids maps a name to the root PIDs whose process trees are timed."""
    cpu0 = {k: sum(tree_cpu(p) for p in v) for k, v in pids.items()}
    r = subprocess.run(
        ["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{seconds}s", "--latency", url],
        capture_output=True,
        text=True,
        timeout=seconds + 30,
    )
    cpu1 = {k: sum(tree_cpu(p) for p in v) for k, v in pids.items()}
    out = r.stdout
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    rps = float(m.group(1)) if m else None
    total = re.search(r"(\d+) requests in", out)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: (.*)", out)
    lat = dict(re.findall(r"^\s+(50|90|99)%\s+([\d.]+\w+)", out, re.M))
    cpu = {k: round(cpu1[k] - cpu0[k], 2) for k in cpu0}
    requests = int(total.group(1)) if total else 0
    return {
        "url": url,
        "requests": requests,
        "requests_per_s": rps,
        "non_2xx": int(non2xx.group(1)) if non2xx else 0,
        "socket_errors": errors.group(1) if errors else None,
        "latency": lat,
        "server_cpu_s": cpu,
        "requests_per_cpu_s": {k: round(requests / v, 1) if v else None for k, v in cpu.items()},
        "wrk_connections": connections,
    }


def scenario_http(env, args):
    path = "/chat/lobby/"

    def measure(label, url, pids):
        try:
            with urllib.request.urlopen(url, timeout=10) as resp:  # noqa: S310 - loopback URL
                status, size = resp.status, len(resp.read())
        except urllib.error.HTTPError as exc:
            status, size = exc.code, len(exc.read())
            log(f"http {label}: {url} answered {status}: {exc.read()[:300]!r}")
        if status != 200:
            die(f"expected 200 from {url}, found {status}")
        # A second of warm-up, then the measured run.
        subprocess.run(["wrk", "-t1", "-c4", "-d1s", url], capture_output=True, timeout=30)
        spies = (
            [
                spy_on(f"http-{label}-{name}", pid)
                for name, plist in pids.items()
                if name in ("web", "daphne")
                for pid in plist[:1]
            ]
            if args.profile
            else []
        )
        res = wrk(url, args.seconds, args.wrk_connections, args.wrk_threads, pids)
        for spy in spies:
            stop_spy(spy)
        row = record("http", {"stack": label, "page_bytes": size, **res})
        log(
            f"http {label}: {row['requests_per_s']} req/s, p99 {row['latency'].get('99')}, "
            f"non-2xx {row['non_2xx']}, cpu {row['server_cpu_s']}"
        )
        return row

    if "baseline" in args.stacks:
        redis_port, _ = start_redis(env.procs)
        port, pid = start_daphne(env, "baseline", redis_port, "baseline-http")
        measure("baseline-daphne", f"http://127.0.0.1:{port}{path}", {"daphne": [pid]})
        ngx_port, ngx = start_nginx(env, [port], port, "http")
        measure(
            "baseline-nginx-daphne",
            f"http://127.0.0.1:{ngx_port}{path}",
            {"daphne": [pid], "nginx": [ngx.pid]},
        )
        env.procs.stop_all()
    for server in args.http_servers:
        redis_port, _ = start_redis(env.procs)
        # Our room page reads the room's history: give it some (50 messages, like a live room).
        seed_history(env, redis_port)
        kind, procs_, threads, variant = [*server.split(":"), "", "", ""][:4]
        extra = WEB_TUNED if variant == "tuned" else {}
        if kind == "uwsgi-standin":
            web_port, web_pid = start_uwsgi(env, redis_port, int(procs_), int(threads), extra)
        else:
            web_port, web_pid = start_web(env, redis_port, kind, int(procs_), int(threads), extra)
        time.sleep(1)
        proto = "http" if kind == "gunicorn" else "uwsgi"
        ngx_port, ngx = start_nginx(env, [web_port], web_port, proto)
        # The cluster's tree: the web role's backends and the history query they run.
        pids = {"web": [web_pid], "nginx": [ngx.pid], "postgres": [env.pg.pid()]}
        label = f"ours-nginx-{kind}-{procs_}x{threads}" + (f"-{variant}" if variant else "")
        measure(label, f"http://127.0.0.1:{ngx_port}{path}", pids)
        env.procs.stop_all()  # Postgres is not among them: it stays up for the next server


def seed_history(env, redis_port):
    e = ours_env(env, redis_port, "pubsub")
    code = (
        "from chat import store\n"
        "n = store.room_last_id('lobby')\n"
        "for i in range(max(0, 50 - n)): store.append('lobby', f'history message {i}')\n"
    )
    subprocess.run(
        [PY, "manage.py", "shell", "-c", code],
        cwd=SERVICE,
        env=e,
        check=True,
        capture_output=True,
        timeout=120,
    )


def scenario_smoke(env, args):
    for stack in args.stacks:
        with ws_stack(env, stack, nginx=True) as (url, pids):
            res = wsload(
                [
                    "fanout",
                    "--url",
                    url,
                    "--receivers",
                    "5",
                    "--messages",
                    "50",
                    "--procs",
                    "1",
                    "--timeout",
                    "20",
                    *pid_args(pids),
                ],
                20,
            )
        log(f"smoke {stack}: {summary(res)}")
        if res["lost"] or res["deliveries"] != res["expected"]:
            die(f"smoke {stack}: expected {res['expected']} deliveries, got {res['deliveries']}")


def loadavg():
    return Path("/proc/loadavg").read_text().split()[:3]


def cpu_probe():
    """CPU milliseconds of a fixed pure-Python loop: how much slower a CPU-second is right now
    (other work shares the host's cores and caches; on the 2-vCPU VM of docs/CAPACITY.md it
    varied from 51 to 91 ms in one afternoon)."""
    t0, acc = time.process_time(), 0
    for i in range(1_000_000):
        acc += i * i % 7
    return round((time.process_time() - t0) * 1000, 1)


def data_tier(env, redis_port):
    """Messages stored, their table's bytes and the WAL position; Redis' PUBLISH count and CPU."""
    sql = (
        "SELECT count(*), pg_total_relation_size('chat_message'), "
        "pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0') FROM chat_message"
    )
    psql = ["psql", "-XAtq", "-F", " ", env.pg_url, "-c", sql]
    rows, size, wal = subprocess.run(
        psql, capture_output=True, text=True, timeout=30, check=True
    ).stdout.split()
    info = subprocess.run(
        ["redis-cli", "-p", str(redis_port), "INFO", "all"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout
    stats = dict(line.split(":", 1) for line in info.splitlines() if ":" in line)
    publish = dict(kv.split("=") for kv in stats.get("cmdstat_publish", "calls=0").split(","))
    return {
        "rows": int(rows),
        "table_bytes": int(size),
        "wal_bytes": int(float(wal)),
        "publishes": int(publish["calls"]),
        "publish_usec": int(publish.get("usec", 0)),
        "redis_used_cpu_s": float(stats["used_cpu_sys"]) + float(stats["used_cpu_user"]),
    }


def per(count, seconds, nd=1):
    return round(count / seconds, nd) if seconds and count else None


def scenario_capacity(env, args):
    """Unit costs of docs/CAPACITY.md that fanout, idle and http do not give.

    store:   one ws process (runws, production settings, Postgres, Redis) and --rooms sockets, one
             per room, sending --store-rate messages/s in all ({"message": ...} frames of --size
             characters) for --duration s: rows stored per CPU-s of the whole Postgres cluster
             (postmaster tree, exited backends included), ws CPU per stored message.
    publish: --replicas ws processes, --members sockets of every room on each, and
             bench/publish.py sending --publish-rate chat broadcasts/s through the product's
             channel layer: PUBLISHes (Redis' own count) per redis-server CPU-s with that many
             subscriber connections per room's channel, and ws CPU per delivery.
    Each measurement runs --repeat times; the load average is recorded around each.
    """
    for measure in args.measure:
        for replicas in args.replicas if measure == "publish" else [1]:
            for run in range(args.repeat):
                capacity_run(env, args, measure, replicas, run)


def capacity_run(env, args, measure, replicas, run):
    rate = args.store_rate if measure == "store" else args.publish_rate
    messages = int(rate * args.duration)
    members = 1 if measure == "store" else replicas * args.members
    prefix = f"cap-{measure}-r{replicas}-{run}"
    timeout = args.duration + args.idle_window + 150
    info = {}
    with ws_stack(env, "ours-pubsub", replicas=replicas, every_port=True, info=info) as (url, pids):
        service_env = ours_env(env, info["redis_port"], "pubsub")
        argv = ["rooms", "--url", url, "--room", prefix, "--rooms", str(args.rooms)]
        argv += ["--members", str(members), "--messages", str(messages), "--size", str(args.size)]
        argv += ["--procs", str(args.procs), "--timeout", str(timeout), "--connect-wall", "90"]
        argv += ["--idle-window", str(args.idle_window), f"--tree=postgres={env.pg.pid()}"]
        argv += pid_args(pids)
        if measure == "store":
            argv += ["--rate", str(rate)]
        else:
            publisher = [PY, str(BENCH / "publish.py"), "--service", str(SERVICE)]
            publisher += ["--rooms", str(args.rooms), "--prefix", prefix, "--size", str(args.size)]
            publisher += ["--messages", str(messages), "--rate", str(rate)]
            publisher += ["--timeout", str(args.duration + 30)]
            argv += ["--exec", json.dumps(publisher)]
        probe0, before, load0 = cpu_probe(), data_tier(env, info["redis_port"]), loadavg()
        res = wsload(argv, timeout, env=service_env)
        load1 = loadavg()
        after, probe1 = data_tier(env, info["redis_port"]), cpu_probe()
    d = {k: after[k] - before[k] for k in before}
    cpu, runtime = res["server_cpu_s"], res["server_runtime_s"]
    numsub = (res.get("publisher") or {}).get("numsub_first_rooms") or [min(members, replicas)]
    subscribers = sum(numsub) / len(numsub)
    ours = sum(cpu.values()) + res["client_cpu_s"]
    ours += (res.get("publisher") or {}).get("publisher_cpu_s", 0)
    row = record(
        "capacity",
        {
            "stack": "ours-pubsub",
            "measure": measure,
            "replicas": replicas,
            "repeat": run,
            "loadavg_start": load0,
            "loadavg_end": load1,
            "cpu_probe_ms": [probe0, probe1],
            # Machine CPU in the window not used by the servers, the client or the publisher: a
            # hint of other work only (a guest's /proc/stat can undercount; it went negative once).
            "other_cpu_s": round(res["machine_busy_cpu_s"] - ours, 2),
            "stored": d["rows"],
            "publishes": d["publishes"],
            "subscribers_per_channel": subscribers,
            "table_bytes_per_stored": per(d["table_bytes"], d["rows"]),
            "wal_bytes_per_stored": per(d["wal_bytes"], d["rows"]),
            "stored_per_postgres_cpu_s": per(d["rows"], cpu["postgres"]),
            "ws_cpu_us_per_stored": per(cpu["daphne"] * 1e6, d["rows"]),
            "ws_cpu_us_per_delivery": per(cpu["daphne"] * 1e6, res["deliveries"], 2),
            "publishes_per_redis_cpu_s": per(d["publishes"], cpu["redis"]),
            "publishes_per_redis_runtime_s": per(d["publishes"], runtime["redis"]),
            "subscriber_deliveries_per_redis_cpu_s": per(
                d["publishes"] * subscribers, cpu["redis"]
            ),
            "redis_publish_command_us": per(d["publish_usec"], d["publishes"], 2),
            "redis_used_cpu_s_whole_run": round(d["redis_used_cpu_s"], 4),
            "data_tier": {"before": before, "after": after},
            **res,
        },
    )
    log(
        f"capacity {measure} replicas={replicas} #{run}: stored={row['stored']} "
        f"publishes={row['publishes']} subs={subscribers} deliveries={res['deliveries']}/"
        f"{res['expected']} lost={res['lost']} pg cpu={cpu['postgres']} ws cpu={cpu['daphne']} "
        f"redis cpu={cpu['redis']} ({runtime['redis']}) -> stored/pg-cpu-s="
        f"{row['stored_per_postgres_cpu_s']} ws us/stored={row['ws_cpu_us_per_stored']} "
        f"publishes/redis-cpu-s={row['publishes_per_redis_cpu_s']} "
        f"(runtime {row['publishes_per_redis_runtime_s']}) load {load0} -> {load1} "
        f"other cpu {row['other_cpu_s']} s, probe {probe0} {probe1} ms"
    )


SCENARIOS = {
    "fanout": scenario_fanout,
    "rate": scenario_rate,
    "idle": scenario_idle,
    "http": scenario_http,
    "scale": scenario_scale,
    "smoke": scenario_smoke,
    "idlecost": scenario_idlecost,
    "capacity": scenario_capacity,
}


def ints(text):
    return [int(x) for x in text.split(",")]


def main():
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("scenario", choices=SCENARIOS)
    p.add_argument(
        "--stacks", default="baseline,ours-pubsub,ours-core", type=lambda s: s.split(",")
    )
    p.add_argument("--receivers", type=ints, default=None)
    p.add_argument("--replicas", type=ints, default=None, help="scale: 1,2,4; rate: 1")
    p.add_argument("--window", type=int, default=20)
    p.add_argument("--procs", type=int, default=2, help="client receiver processes")
    p.add_argument("--timeout", type=int, default=120)
    p.add_argument("--nginx", action="store_true", help="fanout: through nginx")
    p.add_argument("--nginx-workers", type=int, default=1)
    p.add_argument(
        "--product-nginx",
        action="store_true",
        help="use the product's nginx (nginx/start-nginx, nginx/conf) instead of the stand-in",
    )
    p.add_argument("--direct", action="store_true", help="rate: straight to Daphne")
    p.add_argument("--rate", type=float, default=4.0, help="rate: messages/s in total")
    p.add_argument("--duration", type=int, default=60)
    p.add_argument("--connections", type=int, default=15000)
    p.add_argument("--rooms", type=int, default=None, help="idle: 150; capacity: 1000")
    p.add_argument("--hold", type=float, default=10)
    p.add_argument(
        "--connect-concurrency", type=int, default=64, help="idle: handshakes in flight per process"
    )
    p.add_argument(
        "--apps",
        default="baseline,ours-pubsub",
        type=lambda s: s.split(","),
        help="idlecost: apps",
    )
    p.add_argument("--seconds", type=int, default=10, help="http: wrk duration")
    p.add_argument("--wrk-connections", type=int, default=32)
    p.add_argument("--wrk-threads", type=int, default=1)
    p.add_argument(
        "--http-servers",
        default="uwsgi:2:4",
        type=lambda s: s.split(","),
        help="http: comma list of uwsgi:P:T or gunicorn:W:T (services/chat/bin/start-web with "
        "HTTP_SERVER, WEB_PROCESSES, WEB_THREADS; --ours-env adds settings) or uwsgi-standin:P:T",
    )
    p.add_argument("--baseline-budget", type=int, default=40000, help="deliveries per run")
    p.add_argument("--ours-budget", type=int, default=200000, help="deliveries per run")
    p.add_argument("--ours-env", action="append", help="KEY=VALUE for our service (repeatable)")
    p.add_argument("--tag", default="", help="fanout: a name for this series in the results")
    p.add_argument("--keep", action="store_true", help="keep the run directory (logs)")
    p.add_argument("--variant", default="", help="name for --ours-env/patch runs in results")
    p.add_argument("--profile", metavar="DIR", help="py-spy every Daphne process into DIR")
    p.add_argument(
        "--redis-query", default="", help="appended to our REDIS_URL, e.g. max_connections=1000"
    )
    p.add_argument(
        "--measure",
        default="store,publish",
        type=lambda s: s.split(","),
        help="capacity: store and/or publish",
    )
    p.add_argument("--repeat", type=int, default=2, help="capacity: runs of each measurement")
    p.add_argument("--store-rate", type=float, default=200, help="capacity: messages/s sent")
    p.add_argument("--publish-rate", type=float, default=1000, help="capacity: publishes/s")
    p.add_argument("--size", type=int, default=150, help="capacity: characters per message")
    p.add_argument(
        "--members", type=int, default=1, help="capacity publish: sockets per room per process"
    )
    p.add_argument(
        "--idle-window", type=float, default=10, help="capacity: seconds of idle server CPU"
    )
    args = p.parse_args()
    if args.rooms is None:
        args.rooms = 1000 if args.scenario == "capacity" else 150
    if args.replicas is None:
        args.replicas = {"scale": [1, 2, 4], "capacity": [1, 4]}.get(args.scenario, [1])
    if args.receivers is None:
        args.receivers = {"fanout": [10, 100, 500, 2000]}.get(args.scenario, [500])
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # children inherit it
    ARGS.variant, ARGS.ours_env = args.variant, args.ours_env
    ARGS.product_nginx = args.product_nginx
    PROFILE["dir"] = args.profile
    if args.profile:
        Path(args.profile).mkdir(parents=True, exist_ok=True)
    env = Env(args)
    log(f"session {SESSION}, scenario {args.scenario}, run dir {env.rundir}, nofile {hard}")
    try:
        SCENARIOS[args.scenario](env, args)
    finally:
        env.close()


if __name__ == "__main__":
    main()
