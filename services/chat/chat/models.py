from django.db import models


class Room(models.Model):
    """A chat room, created by its first stored message; `last_id` hands out the per-room
    message ids, under a row lock."""

    name = models.CharField(max_length=200, unique=True)
    last_id = models.BigIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    # When retention deleted its last message; such a room is deleted later (store.prune).
    emptied_at = models.DateTimeField(null=True, blank=True)

    def __str__(self):
        return self.name


class Message(models.Model):
    """A message as accepted: stored before it is broadcast, so a client can always catch up."""

    room = models.ForeignKey(Room, on_delete=models.CASCADE, related_name="messages")
    seq = models.BigIntegerField(help_text="per-room id, increasing without gaps")
    text = models.TextField()
    sent_at = models.DateTimeField(db_index=True)
    # The sender's own id for the message, when it gave one: a resend after a reconnect is
    # recognised and not stored twice (docs/protocol.md, "Sending exactly once").
    client_id = models.CharField(max_length=64, null=True, blank=True)

    class Meta:
        constraints = [  # noqa: RUF012 - Django's Meta idiom
            models.UniqueConstraint(fields=["room", "seq"], name="message_room_seq_unique"),
            models.UniqueConstraint(
                fields=["room", "client_id"],
                condition=models.Q(client_id__isnull=False),
                name="message_room_client_id_unique",
            ),
        ]
        ordering = ["room", "seq"]  # noqa: RUF012

    def __str__(self):
        return f"{self.room_id}#{self.seq}"
