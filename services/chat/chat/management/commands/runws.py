"""Serve the ASGI application (the ws role) with Daphne, draining WebSockets on SIGTERM."""

import daphne.server  # noqa: F401, I001 - installs Twisted's asyncio reactor; must come first

import asyncio
import logging
import resource
import signal
import time

from daphne.endpoints import build_endpoint_description_strings
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from twisted.internet import reactor, task

from chat import metrics, runtime
from chat.drain import drain
from chat.runtime import twisted as runtime_twisted
from chat.runtime.daphne import DrainableServer
from chat.runtime.twisted import pending_bytes

logger = logging.getLogger("chat.ws")


def shed_slow_readers(server, limit, patience, now=time.monotonic):
    """Drop connections that hold more than `limit` unsent bytes, or over half of it for
    `patience` seconds.

    Daphne buffers without bound for a client that stops reading, so one slow reader could grow
    the worker's memory until it is killed with everyone else's sockets. A catch-up waits while
    half the limit is unsent (consumers.ChatConsumer._wait_for_reader), so a client that has
    stopped reading sits just above half: `patience` ends that. The dropped client reconnects and
    resumes from its last id: the database has everything it missed.
    """
    sweep = now()
    for protocol in list(server.connections):
        transport = getattr(protocol, "transport", None)
        if (
            transport is None
            or getattr(transport, "disconnected", False)
            or getattr(transport, "_aborting", False)
        ):
            continue  # already dropped: counted once
        pending = pending_bytes(transport)
        if pending <= limit // 2:
            protocol.chat_backlogged_since = None
            continue
        since = getattr(protocol, "chat_backlogged_since", None) or sweep
        protocol.chat_backlogged_since = since
        if pending > limit or sweep - since >= patience:
            logger.warning(
                "slow reader dropped",
                extra={
                    "event": "slow_reader",
                    "pending_bytes": pending,
                    "seconds": round(sweep - since, 1),
                },
            )
            metrics.CLOSES.labels(code="slow_reader").inc()
            transport.abortConnection()


def start_runtime_overrides():
    """Check the enabled runtime overrides against the installed libraries, export the gauge,
    log which are active; stop the boot if one no longer fits (chat/runtime/)."""
    broken = {
        name: problems
        for name, problems in runtime.check().items()
        if name == "always" or runtime.enabled(name)
    }
    if broken:
        lines = [f"  {name}: {p}" for name, problems in broken.items() for p in problems]
        raise CommandError(
            "runtime overrides do not fit the installed libraries "
            f"({runtime.versions()}; written against {runtime.WRITTEN_AGAINST}):\n"
            + "\n".join(lines)
            + "\nSet WS_RUNTIME_OVERRIDES to a list without them (or none), or pin the versions "
            "they were written against (services/chat/requirements.in)."
        )
    active = runtime.active()
    off = [name for name, value in active.items() if not value]
    return f"{len(active) - len(off)} of {len(active)} switched on" + (
        f" (off: {', '.join(off)})" if off else ""
    )


def overrides_in_effect(server, application):
    """{name: 1 or 0}: each override as found in the running process (not only the switch)."""
    from channels.layers import get_channel_layer
    from channels.routing import ProtocolTypeRouter

    from chat.consumers import ChatConsumer
    from chat.runtime.autobahn import LeanWebSocketProtocol
    from chat.runtime.channels import LeanConsumerLoop
    from chat.runtime.channels_redis import ChatPubSubChannelLayer

    on = runtime.enabled
    factory = getattr(server, "_ws_factory", None)
    lean_loop = issubclass(ChatConsumer, LeanConsumerLoop)
    ours = isinstance(get_channel_layer(), ChatPubSubChannelLayer)
    found = {
        "twisted.write_now": runtime_twisted.installed(),
        "autobahn.lean_protocol": factory is not None and factory.protocol is LeanWebSocketProtocol,
        "daphne.create_application": isinstance(server, DrainableServer)
        and on("daphne.create_application"),
        "channels.consumer_loop": lean_loop and on("channels.consumer_loop"),
        "channels.dispatch": lean_loop and on("channels.dispatch"),
        "channels.router": not isinstance(application, ProtocolTypeRouter)
        and on("channels.router"),
    }
    for name in runtime.NAMES:
        if name.startswith("channels_redis."):
            found[name] = ours and on(name)
    return {name: int(bool(found[name])) for name in runtime.NAMES}


def report_overrides(server, application):
    """Log the overrides in effect and set chat_runtime_override_active (once serving)."""
    found = overrides_in_effect(server, application)
    for name, value in found.items():
        metrics.RUNTIME_OVERRIDE.labels(name=name).set(value)
    logger.info(
        "runtime overrides in effect",
        extra={
            "event": "runtime_overrides",
            "active": [n for n, v in found.items() if v],
            "inactive": [n for n, v in found.items() if not v],
        },
    )


def raise_open_files_limit():
    """Lift the soft limit on open files to the hard one; return the new soft limit.

    Each socket is a descriptor, and container engines often start processes with a soft limit of
    1024 (Docker 25+) under a generous hard one; the operator sets the hard limit (ulimits).
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        target = hard if hard != resource.RLIM_INFINITY else 1048576
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        return target
    return soft


class Command(BaseCommand):
    help = "Run Daphne for HTTP and WebSocket; on SIGTERM drain sockets, then exit."

    def add_arguments(self, parser):
        parser.add_argument("--bind", default="0.0.0.0")
        parser.add_argument("--port", type=int, default=8000)

    def handle(self, *args, bind, port, **options):
        active = start_runtime_overrides()
        from chatsite.asgi import application

        ws = settings.WS_SERVER
        # A reconnect wave after a drain arrives all at once: Twisted's default backlog (50) let
        # the kernel refuse handshakes, which nginx answered with 502 (docs/RELIABILITY.md, F9).
        endpoints = [
            f"{e}:backlog={ws['LISTEN_BACKLOG']}"
            for e in build_endpoint_description_strings(host=bind, port=port)
        ]
        server = DrainableServer(
            application=application,
            endpoints=endpoints,
            signal_handlers=False,  # ours below: drain first, then stop
            ping_interval=ws["PING_INTERVAL"],
            ping_timeout=ws["PING_TIMEOUT"],
            websocket_timeout=ws["WEBSOCKET_TIMEOUT"],
            websocket_max_message_size=ws["MAX_MESSAGE_BYTES"],
            # Opening handshakes queue behind the database during a connection storm; autobahn's
            # 5 s default reset them, and every client retried at once.
            websocket_handshake_timeout=ws["HANDSHAKE_TIMEOUT"],
            websocket_connect_timeout=ws["HANDSHAKE_TIMEOUT"],
            application_close_timeout=ws["APPLICATION_CLOSE_TIMEOUT"],
            # Only nginx reaches this port; take the client address and scheme it saw.
            proxy_forwarded_address_header="X-Forwarded-For",
            proxy_forwarded_port_header="X-Forwarded-Port",
            proxy_forwarded_proto_header="X-Forwarded-Proto",
            verbosity=0,
        )
        seconds = settings.CHAT["DRAIN_SECONDS"]

        async def drain_then_stop():
            await drain(server.ports, seconds)
            server.stop()

        def on_signal(signum, frame):
            # Runs between bytecodes of the reactor's thread; hand the work to the event loop.
            reactor.callFromThread(lambda: asyncio.ensure_future(drain_then_stop()))

        task.LoopingCall(
            shed_slow_readers, server, ws["MAX_PENDING_BYTES"], ws["SLOW_READER_SECONDS"]
        ).start(1.0, now=False)
        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        runtime_twisted.install()  # process-wide: this process only serves Daphne's sockets
        reactor.callWhenRunning(report_overrides, server, application)
        files = raise_open_files_limit()
        self.stdout.write(
            f"ws: Daphne on {bind}:{port}, drain {seconds:g} s on SIGTERM, {files} open files",
            ending="\n",
        )
        self.stdout.write(f"ws: runtime overrides: {active}", ending="\n")
        self.stdout.flush()
        server.run()
