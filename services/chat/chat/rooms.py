"""Room names: what a URL may carry, and the channel-layer group each maps to.

Channels group names must be ASCII letters, digits, '-', '_' or '.', shorter than 100 characters.
Room names are any printable text up to CHAT["MAX_ROOM_CHARS"]. Names made only of letters, digits
and '-' keep the tutorial's readable group `chat_<room>`; every other name maps to
`chat_.<sha256>`. The '.' cannot appear in the first form, so the two can never collide.
"""

import hashlib
import re
import unicodedata

from django.conf import settings

_PLAIN = re.compile(r"[A-Za-z0-9-]{1,80}")


class InvalidRoom(ValueError):
    """The room name cannot be used; the message says why."""


def validate(name):
    """Return the room name, or raise InvalidRoom with a reason a user can read."""
    limit = settings.CHAT["MAX_ROOM_CHARS"]
    if not name or not name.strip():
        raise InvalidRoom("room name is empty")
    if len(name) > limit:
        raise InvalidRoom(f"room name is {len(name)} characters; the limit is {limit}")
    for char in name:
        # Cc control, Cf format (bidi overrides, zero-width), Cs, Co private use, Cn unassigned
        if unicodedata.category(char).startswith("C"):
            raise InvalidRoom(f"room name contains the invisible character U+{ord(char):04X}")
    return name


def group_name(room):
    """The channel-layer group for a (validated) room name."""
    if _PLAIN.fullmatch(room):
        return f"chat_{room}"
    return "chat_." + hashlib.sha256(room.encode("utf-8")).hexdigest()
