"""Graceful drain of a ws process on SIGTERM (Daphne itself just cancels every socket).

1. Stop listening: nginx gets "connection refused" and retries another replica at once, and the
   readiness probe on this port fails, so Kubernetes takes the pod out of its Service.
2. Ask every client to reconnect: close 4012 ("service restart"), spread over half the grace so
   the other replicas are not hit by every client in the same instant. Each close goes through the
   consumer's own queue, after whatever it is doing (a message being stored) has finished.
3. Stop when the last socket is gone or WS_DRAIN_SECONDS have passed, whichever comes first.
Clients resume with ?after=<last id>, so nothing is lost (docs/protocol.md).
"""

import asyncio
import logging
import time

from channels.layers import get_channel_layer

from chat import lifecycle, metrics
from chat.consumers import OPEN

logger = logging.getLogger("chat.drain")


async def drain(ports, seconds):
    """Run the three steps; return when the process may stop."""
    if lifecycle.draining:
        return
    lifecycle.draining = True
    metrics.DRAINING.set(1)
    started = time.monotonic()
    for port in ports:
        port.stopListening()
    consumers = list(OPEN)
    logger.info("drain started", extra={"event": "drain", "connections": len(consumers)})

    layer = get_channel_layer()
    pause = (seconds / 2) / max(len(consumers), 1)
    for consumer in consumers:
        try:
            await layer.send(consumer.channel_name, {"type": "chat.drain"})
        except Exception:  # noqa: BLE001 - no layer: close directly, the client resumes anyway
            await consumer.chat_drain({})
        await asyncio.sleep(pause)

    deadline = started + seconds
    while OPEN and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    logger.info(
        "drain finished",
        extra={
            "event": "drain",
            "left_open": len(OPEN),
            "seconds": round(time.monotonic() - started, 2),
        },
    )
