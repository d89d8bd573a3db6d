"""The wire protocol's fixed vocabulary: frame encoding, error codes and close codes.

docs/protocol.md is the reader's version of this file; tests check the two agree.
"""

import orjson

# Error frames: {"type": "error", "code": <code>, "detail": <text>}. The socket stays open.
ERRORS = {
    "binary_frame": "binary frames are not accepted; send JSON text",
    "invalid_client_id": '"client_id" must be a string of 1 to 64 printable ASCII characters',
    "frame_too_large": "frame is larger than {max_frame_bytes} bytes",
    "invalid_json": "frame is not valid JSON",
    "not_an_object": 'frame must be a JSON object such as {{"message": "hi"}}',
    "missing_message": 'the object has no "message" field',
    "message_not_string": '"message" must be a string',
    "empty_message": "message is empty or only whitespace",
    "message_too_long": "message is {length} characters; the limit is {max_chars}",
    "rate_limited": "too many messages; wait {retry_after:.1f} s",
    "unavailable": "the message was not stored (database unavailable); send it again later",
    "broadcast_delayed": (
        "stored as #{id}; live delivery is delayed (channel layer unavailable) and others "
        "will receive it when it recovers"
    ),
}

# Close codes, all in the application's 4000-4999 range. "Service restart" would be RFC 6455's
# 1012 (or 1001), but Daphne's WebSocket library (autobahn) lets a server send only 1000 and
# 3000-4999, so it is 4012 here: same meaning, reconnect and resume.
CLOSE_INVALID_ROOM = 4400
CLOSE_NOT_FOUND = 4404
CLOSE_INVALID_RESUME = 4422
CLOSE_RATE_LIMIT = 4429
CLOSE_INTERNAL = 4500
CLOSE_UNAVAILABLE = 4503
CLOSE_SERVICE_RESTART = 4012

CLOSE_CODES = {
    CLOSE_INVALID_ROOM: "invalid room name",
    CLOSE_NOT_FOUND: "no WebSocket endpoint at this path",
    CLOSE_INVALID_RESUME: "invalid after/history query parameter",
    CLOSE_RATE_LIMIT: "kept sending while rate limited",
    CLOSE_INTERNAL: "internal error (logged on the server)",
    CLOSE_UNAVAILABLE: "service unavailable (database or channel layer); reconnect later",
    CLOSE_SERVICE_RESTART: "server is restarting; reconnect (with ?after=<last id>)",
}


def dumps(obj):
    """Encode a frame once; orjson is several times faster than json and emits compact UTF-8."""
    return orjson.dumps(obj).decode()


def loads(text):
    return orjson.loads(text)


def error(code, **fields):
    """An error frame as text."""
    detail = ERRORS[code].format(**fields)
    return dumps({"type": "error", "code": code, "detail": detail, **fields})


def message(room, msg_id, text, sent_at, client_id=None):
    """A message frame as text; `message` is the tutorial's field, the rest is ours."""
    frame = {
        "type": "message",
        "id": msg_id,
        "room": room,
        "message": text,
        "sent_at": sent_at.isoformat().replace("+00:00", "Z"),
    }
    if client_id is not None:
        frame["client_id"] = client_id
    return dumps(frame)


def ack(msg_id, client_id):
    """The answer to a resent message that is already stored: nothing is stored again."""
    return dumps({"type": "ack", "id": msg_id, "client_id": client_id})


def valid_client_id(value):
    """A sender's message id: 1-64 printable ASCII characters (a UUID fits)."""
    return (
        isinstance(value, str) and 0 < len(value) <= 64 and value.isascii() and value.isprintable()
    )
