"""JSON logs on stdout, one object per line, stamped with service and request id."""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from typing import Any

from services.kit.context import current_request_id
from services.kit.tracing import trace_ids

_RESERVED = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {
    "message",
    "asctime",
    "color_message",  # uvicorn's copy of msg with terminal colour codes
}


# Secrets and personal numbers never reach a log line, whoever logged them and how:
# API keys, refresh tokens, JWTs, password fields, ID numbers and mobile numbers.
# A number counts as personal only standing alone: digits inside a longer word
# (`13812345678deadbeef`, a request id or a hash) are part of an identifier, left as is.
_SECRETS = re.compile(
    r"(?P<key>gr[kr]_)[A-Za-z0-9_\-]{8,}"
    r"|eyJ[A-Za-z0-9_\-]{4,}\.[A-Za-z0-9_\-]{4,}\.[A-Za-z0-9_\-]*"
    r"|(?P<field>\\?\"?(?:password|secret|api_key|refresh_token)\\?\"?\s*[:=]\s*\\?\"?)[^\s\"&,}\\]+"
    r"|(?<![0-9A-Za-z])(?P<id>\d{6})\d{8}(?P<idtail>\d{3}[\dXx])(?![0-9A-Za-z])"
    r"|(?<![0-9A-Za-z])(?P<phone>1\d{2})\d{4}(?P<phonetail>\d{4})(?![0-9A-Za-z])"
)


def _redacted(match: re.Match[str]) -> str:
    if match.group("key"):
        return match.group("key") + "[redacted]"
    if match.group("field"):
        return match.group("field") + "[redacted]"
    if match.group("id"):
        return match.group("id") + "********" + match.group("idtail")
    if match.group("phone"):
        return match.group("phone") + "****" + match.group("phonetail")
    return "[jwt redacted]"


# Every log line passes here: these cheap tests skip the full pattern (about 25 us a
# line) for the usual line, which holds no secret word and no run of 11 digits.
_HINT_WORDS = ("grk_", "grr_", "eyJ", "password", "secret", "api_key", "refresh_token")
_LONG_NUMBER = re.compile(r"[0-9]{11}")


def redact(text: str) -> str:
    """The text with secrets removed and personal numbers masked."""
    if not any(word in text for word in _HINT_WORDS) and not _LONG_NUMBER.search(text):
        return text
    return _SECRETS.sub(_redacted, text)


class JsonFormatter(logging.Formatter):
    """Render a record as one JSON object; extra= fields become top-level keys."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "service": self.service,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        request_id = getattr(record, "request_id", None) or current_request_id()
        if request_id:
            payload["request_id"] = request_id
        ids = trace_ids()
        if ids is not None:
            payload["trace_id"], payload["span_id"] = ids
        for key, value in record.__dict__.items():
            if key not in _RESERVED and key not in payload and not key.startswith("_"):
                payload[key] = value
        if record.exc_info:
            payload["exc"] = self.formatException(record.exc_info)
        return redact(json.dumps(payload, ensure_ascii=False, default=str))


def configure_logging(service: str, level: str = "INFO") -> None:
    """Send every logger to stdout as JSON; call once at process start."""
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("uvicorn.access",):
        logging.getLogger(noisy).setLevel(logging.WARNING)
