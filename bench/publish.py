#!/usr/bin/env python3
"""Publish chat broadcasts through the product's channel layer, at a fixed rate (bench/run.py
capacity --measure publish; started by bench/wsload.py rooms --exec once the sockets are open).

usage: python bench/publish.py --service services/chat --rooms R --prefix P --messages N --rate M

Runs with the service's settings (its environment: DJANGO_ENV, REDIS_URL, ...). Message n goes to
room "<prefix>-<n % R>" with id n // R + 1: exactly the event the ws role's consumer sends after
storing a message (chat.protocol.message encoded once, group_send to the room's group), so every
ws process with a member in the room delivers it. Nothing is stored: the ids follow each other,
and the consumers deliver them without a database read. Bounded by --messages and --timeout.
Prints one JSON line: published, seconds, lateness, own CPU, and the subscriber connections
Redis counts for the first rooms' channels (PUBSUB NUMSUB, before the first publish).
"""

import argparse
import asyncio
import datetime
import json
import os
import resource
import subprocess
import sys
import time


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--service", required=True, help="the service directory (services/chat)")
    p.add_argument("--rooms", type=int, required=True)
    p.add_argument("--prefix", required=True)
    p.add_argument("--messages", type=int, required=True)
    p.add_argument("--rate", type=float, required=True, help="publishes per second")
    p.add_argument("--size", type=int, default=150, help="characters per message")
    p.add_argument("--timeout", type=float, default=120)
    args = p.parse_args()
    sys.path.insert(0, os.path.abspath(args.service))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatsite.settings")
    import django

    django.setup()
    print(json.dumps(asyncio.run(publish(args))), flush=True)


async def publish(args):
    from channels.layers import get_channel_layer
    from django.conf import settings

    from chat import protocol, rooms

    layer = get_channel_layer()
    names = [f"{args.prefix}-{j}" for j in range(args.rooms)]
    groups = [rooms.group_name(name) for name in names]
    # The layer's Redis channel for a group: channels_redis' "<prefix>__group__<group>".
    sample = [
        f"{settings.CHANNEL_LAYERS['default']['CONFIG']['prefix']}__group__{g}" for g in groups
    ]
    out = subprocess.run(
        ["redis-cli", "-u", os.environ["REDIS_URL"], "PUBSUB", "NUMSUB", *sample[:20]],
        capture_output=True,
        text=True,
        timeout=10,
    ).stdout.split()
    numsub = [int(n) for n in out[1::2]]
    ru0 = resource.getrusage(resource.RUSAGE_SELF)
    start = time.monotonic()
    wall_end = start + args.timeout
    published, max_late = 0, 0.0
    for n in range(args.messages):
        now = time.monotonic()
        if now > wall_end:
            break
        due = start + n / args.rate
        if due > now:
            await asyncio.sleep(due - now)
        else:
            max_late = max(max_late, now - due)
        j, seq = n % args.rooms, n // args.rooms
        head = f"{j}|{seq}|{time.time():.6f}|"
        text = head + "x" * max(0, args.size - len(head))
        sent_at = datetime.datetime.now(datetime.UTC)
        frame = protocol.message(names[j], seq + 1, text, sent_at)
        event = {"type": "chat.message", "id": seq + 1, "text": frame, "ts": sent_at.timestamp()}
        await layer.group_send(groups[j], event)
        published += 1
    seconds = time.monotonic() - start
    ru1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = ru1.ru_utime + ru1.ru_stime - ru0.ru_utime - ru0.ru_stime
    return {
        "published": published,
        "seconds": round(seconds, 3),
        "max_late_s": round(max_late, 4),
        "publisher_cpu_s": round(cpu, 3),
        "frame_bytes": len(frame.encode()) if published else None,
        "publish_bytes": len(layer.serialize(event)) if published else None,
        "numsub_first_rooms": numsub,
    }


if __name__ == "__main__":
    main()
