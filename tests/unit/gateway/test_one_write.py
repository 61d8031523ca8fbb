"""The gateway sends what it writes in one loop turn with one write, in order, and
nothing written is lost or late when the connection is closed."""

from __future__ import annotations

import asyncio

import httpx
import pytest
import uvicorn

from gateway.security.one_write import HeldWrites, OneWriteProtocol


class Recorder:
    """A transport that records each write it is given."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        assert not self.closed
        self.writes.append(bytes(data))

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def get_extra_info(self, name: str) -> str:
        return f"extra {name}"


async def test_writes_of_one_turn_leave_as_one() -> None:
    real = Recorder()
    held = HeldWrites(real, asyncio.get_running_loop())  # type: ignore[arg-type]
    held.write(b"HTTP/1.1 201 Created\r\ncontent-length: 2\r\n\r\n")
    held.write(memoryview(b"{}"))
    assert real.writes == []  # not before the turn ends
    await asyncio.sleep(0)
    assert real.writes == [b"HTTP/1.1 201 Created\r\ncontent-length: 2\r\n\r\n{}"]
    held.write(b"next")
    await asyncio.sleep(0)
    assert real.writes[1:] == [b"next"]


async def test_close_sends_what_is_held_first() -> None:
    real = Recorder()
    held = HeldWrites(real, asyncio.get_running_loop())  # type: ignore[arg-type]
    held.write(b"head")
    held.write(b"body")
    held.close()
    assert real.writes == [b"headbody"] and real.closed
    await asyncio.sleep(0)  # the turn's own flush finds nothing more to send
    assert real.writes == [b"headbody"]
    assert held.get_extra_info("peername") == "extra peername"


@pytest.mark.parametrize("pipelined", [1, 3])
async def test_the_protocol_answers_whole(pipelined: int) -> None:
    """uvicorn with the protocol answers each request on a kept-alive connection, and
    several pipelined ones in order."""

    async def app(scope, receive, send):  # type: ignore[no-untyped-def]
        if scope["type"] != "http":
            return
        body = scope["path"].encode()
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-length", str(len(body)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": body})

    config = uvicorn.Config(app, port=0, http=OneWriteProtocol, log_config=None, lifespan="off")
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve())
    for _ in range(1000):  # up to 10 s
        if server.started:
            break
        await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            for path in ("/a", "/bb"):
                response = await client.get(path)
                assert (response.status_code, response.text) == (200, path)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        paths = [f"/p{i}" for i in range(pipelined)]
        writer.write(b"".join(f"GET {p} HTTP/1.1\r\nhost: x\r\n\r\n".encode() for p in paths))
        await writer.drain()
        for path in paths:
            head = await reader.readuntil(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 200 OK")
            assert await reader.readexactly(len(path)) == path.encode()
        writer.close()
    finally:
        server.should_exit = True
        await serving
