"""Operations features of the service: retention and structured logs."""

import json
import logging
from datetime import timedelta

from django.core.management import call_command
from django.utils import timezone

from chat import store
from chat.models import Message
from chatsite.logs import JsonFormatter


def test_prune_messages_keeps_what_retention_allows(capsys):
    store.append("old", "ancient")
    store.append("old", "recent")
    Message.objects.filter(text="ancient").update(sent_at=timezone.now() - timedelta(days=40))
    call_command("prune_messages", "--days", "30")
    assert list(Message.objects.values_list("text", flat=True)) == ["recent"]
    assert "deleted 1 messages older than 30 days" in capsys.readouterr().out


def test_retention_zero_keeps_everything(capsys):
    store.append("old", "ancient")
    Message.objects.update(sent_at=timezone.now() - timedelta(days=4000))
    call_command("prune_messages", "--days", "0")
    assert Message.objects.count() == 1


def test_json_log_lines_carry_the_event_fields():
    """Production logs: one JSON object per line with event, room, reason and code as fields."""
    record = logging.LogRecord("chat.ws", logging.INFO, __file__, 1, "reject", None, None)
    record.event, record.room, record.reason = "reject", "로비", "invalid_json"
    line = json.loads(JsonFormatter().format(record))
    assert line["msg"] == "reject" and line["level"] == "INFO" and line["logger"] == "chat.ws"
    assert (line["event"], line["room"], line["reason"]) == ("reject", "로비", "invalid_json")
    assert line["ts"].endswith("Z")
