"""Server-sent events (the WHATWG `text/event-stream` format), read line by line.

The gateway's streams (`events:stream`, `entities:stream`) give every message an `id:`
(an offset or sequence); reconnecting with `Last-Event-ID` resumes after it. The clients
reconnect by themselves; this module only parses.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ServerSentEvent:
    event: str
    data: str
    id: str | None
    retry: int | None = None  # milliseconds the server asks a reconnect to wait

    def json(self) -> Any:
        import json

        return json.loads(self.data)


class Decoder:
    """Feed lines (without their line ends); a blank line completes a message."""

    def __init__(self) -> None:
        self._event = ""
        self._data: list[str] = []
        self._id: str | None = None
        self._retry: int | None = None
        self.last_event_id: str | None = None

    def feed(self, line: str) -> ServerSentEvent | None:
        if not line:
            return self._dispatch()
        if line.startswith(":"):  # a comment: the gateway's "connected" and keep-alives
            return None
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "event":
            self._event = value
        elif name == "data":
            self._data.append(value)
        elif name == "id" and "\0" not in value:
            self._id = value
        elif name == "retry" and value.isascii() and value.isdigit():
            self._retry = int(value)
        return None

    def _dispatch(self) -> ServerSentEvent | None:
        if self._id is not None:
            self.last_event_id = self._id
        if not self._data:
            self._event, self._id = "", None
            return None
        message = ServerSentEvent(
            self._event or "message", "\n".join(self._data), self._id, self._retry
        )
        self._event, self._data, self._id, self._retry = "", [], None, None
        return message
