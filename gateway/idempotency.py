"""The IETF `Idempotency-Key` header on every create (draft-ietf-httpapi-idempotency-key-header).

Events keep their keys durably in the events store: the events router passes the header
on as the report's `request_id` (ADR 3). Every other create is remembered here for a
day: the first successful answer is kept under the caller's credential, the path and
the key, and a retry with the same body gets it again with `Idempotent-Replayed: true`.
The same key with another body is 422, a retry while the first is still running 409.
Kept in Redis when the gateway has one (shared by replicas), else in process memory.

A secret shown once (a new API key's text) is never kept: a route names such fields in
the `X-Replay-Withhold` header of its answer; the header does not reach the client, and
the kept copy has those fields emptied, with `WITHHELD_NOTE` in its `note`.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import logging
import re
import time
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.errors import ApiError
from services.kit.errors import FieldViolation

log = logging.getLogger("grassroots.gateway.idempotency")

HEADER = "Idempotency-Key"
KEY_PATTERN = re.compile(r"^[\x21-\x7e]{1,255}\Z")
KEY_DESCRIPTION = (
    "IETF Idempotency-Key: a retry with the same key and body returns the first answer "
    "(header Idempotent-Replayed: true); the same key with another body is 422"
)
KEEP_SECONDS = 24 * 3600
PENDING_SECONDS = 120
MAX_LOCAL = 20_000  # answers kept in memory without Redis, oldest dropped first
_KEPT_HEADERS = {b"content-type", b"content-length", b"location", b"cache-control", b"pragma"}
# A route's answer names the top-level JSON fields a replay must not repeat.
WITHHOLD_HEADER = "X-Replay-Withhold"
WITHHELD_NOTE = (
    "A repeated request: its secret was shown once, in the first answer, and is not kept. "
    "Issue a new one if it was lost."
)
# Creates whose component keeps the key itself (as `request_id`).
_KEPT_BY_COMPONENT = re.compile(r"^/v1/tenants/[^/]+/events\Z")


def parse_key(raw: str) -> str:
    """The key without the structured-field quotes; 400 naming the header when malformed."""
    key = raw[1:-1] if len(raw) >= 2 and raw[0] == raw[-1] == '"' else raw
    if not KEY_PATTERN.match(key):
        raise ApiError(
            400,
            f"{HEADER}: 1 to 255 visible ASCII characters",
            violations=[FieldViolation(HEADER, "must be 1 to 255 visible ASCII characters")],
        )
    return key


def applies(method: str, path: str) -> bool:
    """A create: POST to a collection of the v1 API, not a custom method or sign-in."""
    if method != "POST" or not path.startswith("/v1/") or path.startswith("/v1/auth/"):
        return False
    return ":" not in path.rsplit("/", 1)[-1] and not _KEPT_BY_COMPONENT.match(path)


@dataclass
class Kept:
    fingerprint: str
    status: int = 0  # 0 while the first request is still running
    headers: list[tuple[str, str]] | None = None
    body: str = ""

    def dump(self) -> str:
        return json.dumps(self.__dict__)

    @staticmethod
    def load(text: str | bytes) -> Kept:
        data: dict[str, Any] = json.loads(text)
        return Kept(**data)


class ReplayStore:
    """Answers by slot, in Redis when there is one, else (or while it is down) in memory."""

    def __init__(self, redis: Redis | None) -> None:
        self.redis = redis
        self.local: dict[str, tuple[float, str]] = {}
        self._pruned = 0.0

    async def claim(self, slot: str, fingerprint: str) -> Kept | None:
        """Take the slot for a first request; else what is already there."""
        pending = Kept(fingerprint).dump()
        if self.redis is not None:
            try:
                if await self.redis.set(slot, pending, nx=True, ex=PENDING_SECONDS):
                    return None
                found = await self.redis.get(slot)
                return Kept.load(found) if found else None
            except RedisError:
                log.warning("idempotency keys fall back to process memory: Redis is down")
        now = time.monotonic()
        self._prune(now)
        held = self.local.get(slot)
        if held is not None and held[0] > now:
            return Kept.load(held[1])
        self.local[slot] = (now + PENDING_SECONDS, pending)
        return None

    def _prune(self, now: float) -> None:
        """Drop expired answers at most once a second, and the oldest beyond MAX_LOCAL."""
        if now - self._pruned >= 1.0:
            self._pruned = now
            self.local = {k: v for k, v in self.local.items() if v[0] > now}
        while len(self.local) >= MAX_LOCAL:
            del self.local[next(iter(self.local))]

    async def keep(self, slot: str, kept: Kept) -> None:
        await self._write(slot, kept.dump(), KEEP_SECONDS)

    async def release(self, slot: str) -> None:
        """A failed first request leaves the key free for a retry."""
        self.local.pop(slot, None)
        if self.redis is not None:
            with contextlib.suppress(RedisError):
                await self.redis.delete(slot)

    async def _write(self, slot: str, text: str, seconds: int) -> None:
        if self.redis is not None:
            try:
                await self.redis.set(slot, text, ex=seconds)
                return
            except RedisError:
                pass
        self.local[slot] = (time.monotonic() + seconds, text)


_WITHHOLD = WITHHOLD_HEADER.lower().encode()


def _without(body: bytes, fields: list[str]) -> bytes:
    """The answer as kept for replays: the named secrets emptied, the note saying so."""
    if not fields:
        return body
    answer = json.loads(body)
    for field in fields:
        if field in answer:
            answer[field] = ""
    answer["note"] = WITHHELD_NOTE
    return json.dumps(answer).encode()


def _dropping_withhold(send: Send) -> Send:
    """`send`, minus the withhold header (it is for this middleware, not for clients)."""

    async def forward(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = message.get("headers", [])
            message = {**message, "headers": [(k, v) for k, v in headers if k.lower() != _WITHHOLD]}
        await send(message)

    return forward


class IdempotencyMiddleware:
    """Replays creates that carry an Idempotency-Key; see the module docstring."""

    def __init__(self, app: ASGIApp, store: ReplayStore) -> None:
        self.app = app
        self.store = store

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = dict(scope.get("headers", [])) if scope["type"] == "http" else {}
        raw = headers.get(HEADER.lower().encode())
        credential = headers.get(b"authorization", b"") + b"\0" + headers.get(b"x-api-key", b"")
        if raw is None or credential == b"\0" or not applies(scope["method"], scope["path"]):
            await self.app(scope, receive, _dropping_withhold(send))
            return
        try:
            key = parse_key(raw.decode("latin-1"))
        except ApiError as exc:
            await exc.response()(scope, receive, send)
            return
        body, more = b"", True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        slot = (
            "idem:"
            + hashlib.sha256(
                b"\0".join((credential, scope["path"].encode(), key.encode()))
            ).hexdigest()
        )
        fingerprint = hashlib.sha256(body).hexdigest()
        found = await self.store.claim(slot, fingerprint)
        if found is not None:
            await self._answer_retry(found, fingerprint, scope, send)
            return
        await self._first(scope, body, send, slot, fingerprint)

    async def _first(self, scope: Scope, body: bytes, send: Send, slot: str, fp: str) -> None:
        sent = False

        async def replay_body() -> Message:
            nonlocal sent
            if sent:
                return {"type": "http.disconnect"}
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        kept = Kept(fp)
        chunks: list[bytes] = []
        withheld: list[str] = []

        async def capture(message: Message) -> None:
            if message["type"] == "http.response.start":
                kept.status = message["status"]
                headers = message.get("headers", [])
                withheld.extend(
                    field.strip()
                    for name, value in headers
                    if name.lower() == _WITHHOLD
                    for field in value.decode("latin-1").split(",")
                    if field.strip()
                )
                kept.headers = [
                    (k.decode("latin-1"), v.decode("latin-1"))
                    for k, v in headers
                    if k.lower() in _KEPT_HEADERS
                ]
                message = {
                    **message,
                    "headers": [
                        *((k, v) for k, v in headers if k.lower() != _WITHHOLD),
                        (b"idempotent-replayed", b"false"),
                    ],
                }
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, replay_body, capture)
        finally:
            if 200 <= kept.status < 300:
                kept.body = base64.b64encode(_without(b"".join(chunks), withheld)).decode()
                if withheld:  # the body changed length
                    kept.headers = [h for h in kept.headers or [] if h[0] != "content-length"]
                await self.store.keep(slot, kept)
            else:
                await self.store.release(slot)

    @staticmethod
    async def _answer_retry(found: Kept, fingerprint: str, scope: Scope, send: Send) -> None:
        async def nothing() -> Message:
            return {"type": "http.disconnect"}

        if found.fingerprint != fingerprint:
            error = ApiError(
                422,
                f"{HEADER} was already used for a different request body",
                status="FAILED_PRECONDITION",  # as the events service answers a reused key
                reason="IDEMPOTENCY_KEY_REUSED",
                violations=[FieldViolation(HEADER, "was already used with another body")],
            )
            await error.response()(scope, nothing, send)
            return
        if not found.status:
            error = ApiError(
                409,
                f"a request with this {HEADER} is still in progress; retry shortly",
                reason="IDEMPOTENCY_KEY_IN_USE",
                headers={"Retry-After": "1"},
            )
            await error.response()(scope, nothing, send)
            return
        headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in found.headers or []]
        headers.append((b"idempotent-replayed", b"true"))
        await send({"type": "http.response.start", "status": found.status, "headers": headers})
        await send({"type": "http.response.body", "body": base64.b64decode(found.body)})
