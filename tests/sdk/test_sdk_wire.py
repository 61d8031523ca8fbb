"""What the gateway does rarely, played by a small real HTTP server on loopback: answers
429 and 503 with Retry-After, and a stream that breaks in the middle."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from grassroots_sdk import AsyncClient, Client, Retry, Unavailable
from grassroots_sdk.errors import retry_after_seconds

EVENT = {
    "id": "ev_1",
    "name": "tenants/sh-x/events/ev_1",
    "category": "roads.damage",
    "description": "d",
    "location": {"longitude": 121.0, "latitude": 31.0, "crs": "WGS84"},
    "source": "resident",
    "state": "reported",
    "village": "sh/x",
    "grid_cell": "g1",
    "grid_worker": "w1",
    "create_time": "2026-12-03T00:00:00Z",
    "update_time": "2026-12-03T00:00:00Z",
    "etag": "e",
}


class Seen:
    def __init__(self) -> None:
        self.requests: list[tuple[str, str, dict[str, str], float]] = []


def serve(answer: Callable[[BaseHTTPRequestHandler, int], None]) -> Iterator[tuple[str, Seen]]:
    seen = Seen()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _any(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            if length:
                self.rfile.read(length)
            seen.requests.append(
                (self.command, self.path, dict(self.headers.items()), time.monotonic())
            )
            answer(self, len(seen.requests))

        def do_GET(self) -> None:
            self._any()

        def do_POST(self) -> None:
            self._any()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()


def send_json(handler: BaseHTTPRequestHandler, status: int, body: object, **headers: str) -> None:
    data = json.dumps(body).encode()
    handler.send_response(status)
    handler.send_header("content-type", "application/json")
    handler.send_header("content-length", str(len(data)))
    for name, value in headers.items():
        handler.send_header(name.replace("_", "-"), value)
    handler.end_headers()
    handler.wfile.write(data)


def busy_then_created(handler: BaseHTTPRequestHandler, count: int) -> None:
    if count == 1:
        error = {"error": {"code": 429, "status": "RESOURCE_EXHAUSTED", "message": "slow down"}}
        send_json(handler, 429, error, Retry_After="1")
    elif count == 2:
        error = {"error": {"code": 503, "status": "UNAVAILABLE", "message": "events is down"}}
        send_json(handler, 503, error, Retry_After="0")
    else:
        send_json(handler, 201, EVENT)


@pytest.fixture
def flaky() -> Iterator[tuple[str, Seen]]:
    yield from serve(busy_then_created)


def test_429_and_503_are_retried_after_retry_after_with_one_idempotency_key(
    flaky: tuple[str, Seen],
) -> None:
    url, seen = flaky
    with Client(url, api_key="grk_test", tenant="sh-x") as client:
        started = time.monotonic()
        event = client.events.create("roads.damage", "d", 121.0, 31.0)
    assert event.id == "ev_1"
    assert len(seen.requests) == 3
    keys = {headers.get("Idempotency-Key") for _, _, headers, _ in seen.requests}
    assert len(keys) == 1 and None not in keys  # one key, kept on every attempt
    assert seen.requests[1][3] - seen.requests[0][3] >= 0.95  # Retry-After: 1 was honoured
    assert time.monotonic() - started < 5
    assert {headers.get("X-API-Key") for _, _, headers, _ in seen.requests} == {"grk_test"}


async def test_the_async_client_retries_the_same_way(flaky: tuple[str, Seen]) -> None:
    url, seen = flaky
    async with AsyncClient(url, api_key="grk_test", tenant="sh-x") as client:
        event = await client.events.create("roads.damage", "d", 121.0, 31.0)
    assert event.id == "ev_1" and len(seen.requests) == 3
    assert len({headers.get("Idempotency-Key") for _, _, headers, _ in seen.requests}) == 1


def test_retries_stop_after_the_last_attempt(flaky: tuple[str, Seen]) -> None:
    url, seen = flaky
    client = Client(url, api_key="k", tenant="sh-x", retry=Retry(attempts=2))
    with client, pytest.raises(Unavailable) as caught:
        client.events.create("roads.damage", "d", 121.0, 31.0)
    assert caught.value.status == 503 and len(seen.requests) == 2


def stream_that_breaks(handler: BaseHTTPRequestHandler, count: int) -> None:
    """The first connection sends offset 1 and drops; a reconnect must say Last-Event-ID 1."""
    handler.send_response(200)
    handler.send_header("content-type", "text/event-stream")
    handler.send_header("connection", "close")
    handler.end_headers()
    first = count == 1
    offset = 1 if first else int(handler.headers.get("Last-Event-ID", "0")) + 1
    data = json.dumps(EVENT | {"id": f"ev_{offset}"})
    handler.wfile.write(
        f": connected\n\nretry: 50\nid: {offset}\nevent: event.reported\ndata: {data}\n\n".encode()
    )
    handler.wfile.flush()
    handler.close_connection = True


@pytest.fixture
def breaking() -> Iterator[tuple[str, Seen]]:
    yield from serve(stream_that_breaks)


def test_a_broken_stream_reconnects_after_the_last_event_id(breaking: tuple[str, Seen]) -> None:
    url, seen = breaking
    with Client(url, api_key="k", tenant="sh-x") as client:
        stream = client.events.stream()
        changes = []
        for change in stream:
            changes.append(change)
            if len(changes) == 3:
                break
        stream.close()
    assert [c.offset for c in changes] == [1, 2, 3]
    assert [c.event.id for c in changes] == ["ev_1", "ev_2", "ev_3"]
    assert "Last-Event-ID" not in seen.requests[0][2]
    assert [r[2].get("Last-Event-ID") for r in seen.requests[1:3]] == ["1", "2"]
    assert stream.source.reconnects == 2


async def test_the_async_stream_reconnects_too(breaking: tuple[str, Seen]) -> None:
    url, seen = breaking
    async with AsyncClient(url, api_key="k", tenant="sh-x") as client:
        stream = await client.events.stream(last_event_id="5")
        offsets = []
        async for change in stream:
            offsets.append(change.offset)
            if len(offsets) == 2:
                break
    assert offsets[1] == offsets[0] + 1
    assert seen.requests[0][2].get("Last-Event-ID") == "5"


def test_retry_after_takes_seconds_or_an_http_date() -> None:
    assert retry_after_seconds("3") == 3.0
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0) == 10.0
    assert retry_after_seconds("soon") is None
