"""Database access for the consumer: small synchronous helpers, each one transaction."""

from datetime import timedelta

from django.db import connection, transaction
from django.utils import timezone

from chat.models import Message, Room


def room_last_id(name):
    """The room's newest message id (0 for a new room), creating the room on first use."""
    room, _ = Room.objects.get_or_create(name=name)
    return room.last_id


def append(name, text, client_id=None):
    """Store a message with the room's next id; return (id, sent_at, stored_before).

    The room row stays locked until commit, so id N+1 is handed out only after N is committed:
    whoever sees N+1 can always read N from the database (the consumer's gap fill relies on it).
    A `client_id` already stored in the room returns that message instead (stored_before=True):
    the lock makes the check and the insert one step.
    """
    with transaction.atomic():
        room, _ = Room.objects.select_for_update().get_or_create(name=name)
        if client_id is not None:
            earlier = room.messages.filter(client_id=client_id).values_list("seq", "sent_at")
            if found := earlier.first():
                return (*found, True)
        room.last_id += 1
        room.save(update_fields=["last_id"])
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
    size, and an empty result is the only case that needs the room row (created on first use).
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


def prune(days):
    """Delete messages older than `days`; return how many went."""
    cutoff = timezone.now() - timedelta(days=days)
    deleted, _ = Message.objects.filter(sent_at__lt=cutoff).delete()
    return deleted
