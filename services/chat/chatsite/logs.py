"""Log formatters: one JSON object per line in production, readable text in development.

Structured fields travel in `extra={...}` (event, room, reason, code, ...), alike in both formats.
"""

import json
import logging
import time

# Attributes every LogRecord has; anything else came from `extra=` and is a field of ours.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


def _fields(record):
    return {k: v for k, v in vars(record).items() if k not in _STANDARD and k != "fields"}


class JsonFormatter(logging.Formatter):
    def format(self, record):
        line = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
            **_fields(record),
        }
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    def format(self, record):
        fields = _fields(record)
        record.fields = "".join(f" {k}={v!r}" for k, v in fields.items()) if fields else ""
        return super().format(record)
