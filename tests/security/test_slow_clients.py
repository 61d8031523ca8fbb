"""Slow clients cannot hold the gateway's connections (issue 11, finding 11).

The real gateway process (`python -m gateway`) on a free port, with deadlines of one
second so the test is quick; raw sockets play the slow client: headers that never end,
a body that stops half way, or more connections than the gateway takes. Before the
deadlines, each of these connections stayed open past 35 s.
"""

from __future__ import annotations

import os
import select
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from devstack.stack import free_port

ROOT = Path(__file__).resolve().parents[2]
DEADLINE = 1.0
MAX_CONCURRENCY = 4
# The deadline plus scheduling slack on a busy machine; far below the 35 s seen before.
WITHIN = DEADLINE + 3.0


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    port = free_port()
    unused = f"127.0.0.1:{free_port()}"  # no component answers: only /healthz is called
    env = {
        **os.environ,
        "GRASSROOTS_GATEWAY_PORT": str(port),
        **{
            f"GRASSROOTS_GATEWAY_{name}_ADDRESS": unused
            for name in ("MAP", "EVENTS", "COMMAND", "TWIN", "EMPOWER")
        },
        "GRASSROOTS_GATEWAY_HEADER_TIMEOUT_SECONDS": str(DEADLINE),
        "GRASSROOTS_GATEWAY_BODY_IDLE_TIMEOUT_SECONDS": str(DEADLINE),
        "GRASSROOTS_GATEWAY_BODY_TIMEOUT_SECONDS": str(DEADLINE * 3),
        "GRASSROOTS_GATEWAY_MAX_CONCURRENCY": str(MAX_CONCURRENCY),
    }
    log = (tmp_path_factory.mktemp("slow-clients") / "gateway.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "gateway"], cwd=ROOT, env=env, stdout=log, stderr=log
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert process.poll() is None, "the gateway exited at start-up"
            assert time.monotonic() < deadline, "the gateway did not start in 30 s"
            time.sleep(0.2)
        yield port
    finally:
        process.terminate()
        process.wait(15)
        log.close()


def connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port))
    sock.settimeout(WITHIN + 5)
    return sock


def until_closed(sock: socket.socket) -> tuple[float, bytes]:
    """Seconds until the gateway closed the connection, and what it said before."""
    started, answer = time.monotonic(), b""
    with sock:
        while chunk := sock.recv(4096):
            answer += chunk
    return time.monotonic() - started, answer


def test_headers_that_never_end_are_cut_off(gateway):
    sock = connect(gateway)
    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: gateway\r\nX-Slow: ")
    waited, answer = until_closed(sock)
    assert waited < WITHIN
    assert answer.startswith(b"HTTP/1.1 408 ")
    assert b"headers" in answer


def test_a_connection_that_sends_nothing_is_closed(gateway):
    waited, _ = until_closed(connect(gateway))
    assert DEADLINE * 0.9 <= waited < WITHIN


def test_a_body_that_stops_half_way_is_cut_off(gateway):
    sock = connect(gateway)
    sock.sendall(
        b"POST /v1/auth/token HTTP/1.1\r\nHost: gateway\r\n"
        b"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 200\r\n\r\n"
        b"grant_type=password&username="
    )
    waited, answer = until_closed(sock)
    assert waited < WITHIN
    assert answer.startswith(b"HTTP/1.1 408 ")
    assert b"body" in answer


def test_a_body_trickled_a_byte_at_a_time_is_cut_off_by_the_total_deadline(gateway):
    sock = connect(gateway)
    sock.sendall(
        b"POST /v1/auth/token HTTP/1.1\r\nHost: gateway\r\n"
        b"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 200\r\n\r\n"
    )
    started = time.monotonic()
    while time.monotonic() - started < DEADLINE * 3 + WITHIN:
        sock.sendall(b"a")  # a byte well within the idle deadline every time
        answered, _, _ = select.select([sock], [], [], DEADLINE / 4)
        if answered:
            break
    _, answer = until_closed(sock)
    assert DEADLINE * 3 * 0.9 <= time.monotonic() - started < DEADLINE * 3 + WITHIN
    assert answer.startswith(b"HTTP/1.1 408 ")


def test_a_prompt_client_on_a_kept_alive_connection_is_served(gateway):
    with httpx.Client(base_url=f"http://127.0.0.1:{gateway}") as client:
        for _ in range(3):
            assert client.get("/healthz").status_code == 200
            time.sleep(DEADLINE / 2)


def test_connections_beyond_the_limit_are_refused_with_503(gateway):
    held = [connect(gateway) for _ in range(MAX_CONCURRENCY)]
    try:
        time.sleep(0.2)
        over = httpx.get(f"http://127.0.0.1:{gateway}/healthz", timeout=5)
        assert over.status_code == 503
    finally:
        for sock in held:
            sock.close()
    time.sleep(0.2)
    assert httpx.get(f"http://127.0.0.1:{gateway}/healthz", timeout=5).status_code == 200
