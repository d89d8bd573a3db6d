"""Database access for the consumer: small synchronous helpers, each one transaction."""

from datetime import timedelta

from django.db import connection, transaction
from django.utils import timezone

from chat.models import Message, Room


def room_last_id(name):
    """The room's newest stored message id (0 when it has none). Reads only: a room row exists
    once its first message is stored, so page views and handshakes write nothing.

    The newest *stored* id, not the room's counter: after retention has emptied a room, a client
    joining it starts from 0, and nothing it holds goes stale if the room row is later deleted
    and its ids start again from 1 (prune()).
    """
    with connection.cursor() as cursor:
        cursor.execute(_NEWEST, [name])
        row = cursor.fetchone()
    return row[0] if row else 0


def append(name, text, client_id=None):
    """Store a message with the room's next id; return (id, sent_at, stored_before).

    The room row stays locked until commit, so id N+1 is handed out only after N is committed:
    whoever sees N+1 can always read N from the database (the consumer's gap fill relies on it).
    A `client_id` already stored in the room returns that message instead (stored_before=True):
    the lock makes the check and the insert one step.
    """
    with transaction.atomic():
        # The first stored message creates the room: nothing else does (room_last_id).
        room, _ = Room.objects.select_for_update().get_or_create(name=name)
        if client_id is not None:
            earlier = room.messages.filter(client_id=client_id).values_list("seq", "sent_at")
            if found := earlier.first():
                return (*found, True)
        room.last_id += 1
        fields = ["last_id"]
        if room.emptied_at is not None:  # pruned empty, in use again: keep the row
            room.emptied_at = None
            fields.append("emptied_at")
        room.save(update_fields=fields)
        sent_at = timezone.now()
        Message.objects.create(
            room=room, seq=room.last_id, text=text, sent_at=sent_at, client_id=client_id
        )
    return room.last_id, sent_at, False


def after(name, last_id, limit, upto=None):
    """Messages of the room with id > last_id (and <= upto), oldest first, at most `limit`."""
    rows = Message.objects.filter(room__name=name, seq__gt=last_id)
    if upto is not None:
        rows = rows.filter(seq__lte=upto)
    return list(rows.order_by("seq").values_list("seq", "text", "sent_at", "client_id")[:limit])


def page_history(name, count):
    """The room page's history: (texts of the last `count` messages, oldest first; newest id).

    One SQL statement instead of the ORM's join: building the queryset and parsing `sent_at`
    (which the page does not show) were half of the page's CPU time (docs/PERFORMANCE.md). The
    scalar subquery lets Postgres walk the (room, seq) unique index backwards whatever the room's
    size; an empty result asks room_last_id() (which writes nothing either).
    """
    with connection.cursor() as cursor:
        cursor.execute(_PAGE_HISTORY, [name, count])
        rows = cursor.fetchall()
    if not rows:
        return [], room_last_id(name)
    rows.reverse()
    return [text for _, text in rows], rows[-1][0]


# chat_message / chat_room: the models' tables (Django's default names for app `chat`).
_PAGE_HISTORY = (
    "SELECT seq, text FROM chat_message WHERE room_id = "
    "(SELECT id FROM chat_room WHERE name = %s) ORDER BY seq DESC LIMIT %s"
)
_NEWEST = (
    "SELECT seq FROM chat_message WHERE room_id = "
    "(SELECT id FROM chat_room WHERE name = %s) ORDER BY seq DESC LIMIT 1"
)


def prune(days, room_grace_seconds):
    """Delete messages older than `days`, then rooms left empty for `room_grace_seconds`; return
    (messages deleted, rooms deleted).

    A room that retention empties is marked (emptied_at) and deleted at a later run, once it has
    been empty for longer than a socket may live (DAPHNE_WEBSOCKET_TIMEOUT): a client that joined
    while it still had messages holds their ids, and would drop the ids of a new room of the same
    name (which start again from 1) as duplicates. Clients joining an empty room start from 0.
    A message stored in a marked room clears the mark (append()).
    """
    now = timezone.now()
    messages, _ = Message.objects.filter(sent_at__lt=now - timedelta(days=days)).delete()
    with transaction.atomic():
        # Locked, and emptied_at checked again once locked: a message stored meanwhile cleared
        # it (append() holds the same row lock), and that room stays.
        expired = (
            Room.objects.select_for_update(of=("self",))
            .filter(
                messages__isnull=True, emptied_at__lt=now - timedelta(seconds=room_grace_seconds)
            )
            .values_list("id", flat=True)
        )
        rooms, _ = Room.objects.filter(id__in=list(expired), messages__isnull=True).delete()
    Room.objects.filter(messages__isnull=True, emptied_at__isnull=True).update(emptied_at=now)
    return messages, rooms
