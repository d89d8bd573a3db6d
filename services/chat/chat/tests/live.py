"""A live `manage.py runws` for tests needing real sockets and signals (SQLite, in-memory layer)."""

import os
import subprocess
import sys
from pathlib import Path

from tests.servers import free_port, port_open, wait_for

SERVICE = Path(__file__).resolve().parents[2]


def start_runws(tmp, **extra):
    """Migrate `tmp`/db.sqlite3, start runws on a free port with `extra` in its environment and
    wait until it listens; (port, proc, log). The caller stops `proc` (tests.servers.stop)."""
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    env.update(DATABASE_URL=f"sqlite:///{tmp}/db.sqlite3", **extra)
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "-v0"], cwd=SERVICE, env=env, check=True
    )
    port = free_port()
    log = Path(tmp) / f"runws-{port}.log"
    proc = subprocess.Popen(
        [sys.executable, "manage.py", "runws", "--bind", "127.0.0.1", "--port", str(port)],
        cwd=SERVICE,
        env=env,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
    )
    wait_for(lambda: port_open(port), 20, f"runws on port {port} (log {log})")
    return port, proc, log
