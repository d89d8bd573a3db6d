"""Retention: delete messages older than CHAT_RETENTION_DAYS, then rooms left empty.

Once (the Kubernetes CronJob `prune`), or every N seconds (`--every`, compose's service `prune`).
"""

import logging
import signal
import threading
import time
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand
from django.db import DatabaseError, connections

from chat import store

logger = logging.getLogger("chat.prune")


class Command(BaseCommand):
    help = (
        "Delete messages older than CHAT_RETENTION_DAYS (0 keeps everything), then rooms that "
        "have been empty for longer than a socket may live."
    )

    def add_arguments(self, parser):
        parser.add_argument("--days", type=int, default=settings.CHAT["RETENTION_DAYS"])
        parser.add_argument(
            "--every",
            type=int,
            default=0,
            metavar="SECONDS",
            help="run again every SECONDS until SIGTERM (0: once)",
        )
        parser.add_argument(
            "--touch",
            type=Path,
            default=None,
            metavar="FILE",
            help="touch FILE after each successful run (a health check reads its age)",
        )

    def handle(self, *args, days, every, touch, **options):
        if every <= 0:
            self.prune(days, touch)
            return
        stop = threading.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stop.set())
        while not stop.is_set():
            started = time.monotonic()
            try:
                self.prune(days, touch)
            except DatabaseError as exc:
                # Postgres restarting: the next run catches up (the health check goes stale
                # after two missed runs).
                logger.warning("prune failed", extra={"event": "prune_failed", "error": str(exc)})
            connections.close_all()  # an hour idle: no connection held meanwhile
            stop.wait(max(1.0, every - (time.monotonic() - started)))

    def prune(self, days, touch):
        if days <= 0:
            self.stdout.write("retention is 0 (keep forever): nothing deleted")
        else:
            grace = settings.WS_SERVER["WEBSOCKET_TIMEOUT"]
            messages, rooms = store.prune(days, grace)
            self.stdout.write(
                f"deleted {messages} messages older than {days} days and {rooms} rooms "
                f"empty for over {grace} s"
            )
        if touch is not None:
            touch.touch()
