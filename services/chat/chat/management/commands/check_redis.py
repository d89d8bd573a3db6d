"""`manage.py check_redis`: the channel layer's Redis as configured, asked at start (bin/start-*).

Settings already refuse malformed or repeated shards at boot; this asks the servers what only
they know, and stops the role with `expected ..., found ...` when the configuration cannot work:
a Sentinel name that does not resolve (unless the other Sentinels know it: then it is only
down), a master name no Sentinel knows, a shard host that does not resolve. A Redis that is
merely down is not a configuration error: the role starts, /readyz says 503 until it is back.
"""

import socket
import time
from typing import ClassVar

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

TIMEOUT = 2.0  # seconds per question to one server


def _resolves(host):
    try:
        socket.getaddrinfo(host, None)
        return None
    except OSError as exc:
        return f"does not resolve ({exc.strerror or exc})"


def _sentinel_problems(shards):
    """(errors, warnings, retry) for the Sentinel shards: retry when no Sentinel answered yet."""
    sentinels = shards[0].sentinels
    manager = shards[0].sentinel_manager(TIMEOUT)  # one client per Sentinel, in order
    unresolved = {}
    answering = []
    for (host, port), client in zip(sentinels, manager.sentinels, strict=True):
        why = _resolves(host)
        if why:
            unresolved[(host, port)] = why
            continue
        try:
            answering.append(((host, port), client, client.sentinel_masters()))
        except Exception as exc:  # noqa: BLE001 - named in the message below
            unresolved[(host, port)] = f"does not answer ({type(exc).__name__}: {exc})"
    if not answering:
        found = "; ".join(f"{h}:{p} {why}" for (h, p), why in unresolved.items())
        return [f"expected a Sentinel of REDIS_SENTINELS to answer, found none: {found}"], [], True
    errors, warnings = [], []
    (first, client, known) = answering[0]
    for shard in shards:
        if shard.master_name not in known:
            errors.append(
                f"expected Sentinel {first[0]}:{first[1]} to know the master "
                f"{shard.master_name!r} (REDIS_MASTER_NAME), found it knows only: "
                f"{', '.join(sorted(known)) or 'none'}"
            )
    if errors:
        return errors, warnings, False
    peers = set()
    for shard in shards:
        for peer in client.sentinel_sentinels(shard.master_name):
            peers.add((peer["ip"], int(peer["port"])))
    peers |= {address for address, _, _ in answering}
    for (host, port), why in unresolved.items():
        if (host, port) in peers:
            warnings.append(f"Sentinel {host}:{port} {why}; the others know it: it is down")
        else:
            errors.append(
                f"expected every REDIS_SENTINELS entry to be a Sentinel of "
                f"{shards[0].master_name!r}, found {host}:{port} {why} and unknown to the "
                f"others (they know: {', '.join(f'{h}:{p}' for h, p in sorted(peers))})"
            )
    return errors, warnings, False


def _url_problems(shards):
    from urllib.parse import urlsplit

    errors = []
    for shard in shards:
        host = urlsplit(shard.url).hostname
        why = host and _resolves(host)
        if why:
            errors.append(f"expected the Redis shard {shard.label} to resolve, found it {why}")
    return errors, [], bool(errors)


def problems(shards):
    """(errors, warnings, retry): what is wrong with the shards as the servers answer now."""
    if shards[0].master_name is not None:
        return _sentinel_problems(shards)
    return _url_problems(shards)


class Command(BaseCommand):
    help = "Ask the configured Redis (or Sentinels) whether the channel layer can work."
    requires_system_checks: ClassVar[list] = []

    def add_arguments(self, parser):
        parser.add_argument(
            "--wait",
            type=float,
            default=30.0,
            help="seconds to keep asking while names do not resolve or no Sentinel answers",
        )

    def handle(self, *args, wait, **options):
        shards = settings.REDIS_SHARDS
        if not shards:
            self.stdout.write("check_redis: no Redis configured (the in-memory layer)")
            return
        deadline = time.monotonic() + wait
        while True:
            errors, warnings, retry = problems(shards)
            if not (errors and retry and time.monotonic() < deadline):
                break
            time.sleep(1.0)  # DNS and Sentinels may lag the role's own start by seconds
        for warning in warnings:
            self.stderr.write(f"check_redis: warning: {warning}")
        if errors:
            raise CommandError("; ".join(errors))
        labels = ", ".join(shard.label for shard in shards)
        self.stdout.write(f"check_redis: {len(shards)} shard(s) configured: {labels}")
