"""The floor of the gateway benchmarks: what one HTTP hop plus one gRPC hop cost in Python.

A bare FastAPI route that forwards the request body (or the id) in one unary grpc.aio
call to a bare grpc.aio server that answers with what it got. No authentication, no
validation, no storage: nothing the gateway and a component could do without.
bench_events.py (report creates and reads) and bench_twin_rest.py (single readings) drive
it with the same wrk settings as the platform and print the platform's rate as a fraction
of this one, measured in the same run. `Floor` starts and stops its two processes.

    python bench/events_floor.py grpc PORT
    python bench/events_floor.py http PORT GRPC_PORT
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

import grpc
import httpx
import uvicorn
from fastapi import FastAPI, Request, Response

from devstack.stack import free_port

METHOD = "/floor.Floor/Echo"
ROOT = Path(__file__).resolve().parent.parent
# What the twin answers a single reading it accepted (wrk_twin_ingest.lua checks it).
ACCEPTED = b'{"accepted_count": 1, "rejected_count": 0, "stale_count": 0, "rejections": []}'


async def serve_grpc(port: int) -> None:
    async def echo(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        return request

    handler = grpc.method_handlers_generic_handler(
        "floor.Floor", {"Echo": grpc.unary_unary_rpc_method_handler(echo)}
    )
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((handler,))
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    await server.wait_for_termination()


def http_app(grpc_port: int) -> FastAPI:
    app = FastAPI()
    calls: dict[str, grpc.aio.UnaryUnaryMultiCallable] = {}

    def echo() -> grpc.aio.UnaryUnaryMultiCallable:
        # The channel belongs to uvicorn's event loop, so it is made on the first request.
        if "echo" not in calls:
            channel = grpc.aio.insecure_channel(f"127.0.0.1:{grpc_port}")
            calls["echo"] = channel.unary_unary(METHOD)
        return calls["echo"]

    @app.post("/v1/tenants/{tenant}/events", status_code=201)
    async def create(tenant: str, request: Request) -> Response:
        answer = await echo()(await request.body())
        return Response(answer, status_code=201, media_type="application/json")

    @app.post("/v1/tenants/{tenant}:ingestTelemetry")
    async def ingest(tenant: str, request: Request) -> Response:
        await echo()(await request.body())
        return Response(ACCEPTED, media_type="application/json")

    @app.get("/v1/tenants/{tenant}/events/{event}")
    async def get(tenant: str, event: str) -> Response:
        answer = await echo()(b'{"id":"' + event.encode() + b'"}')
        return Response(answer, media_type="application/json")

    return app


class Floor:
    """This module's two processes: bare FastAPI -> one grpc.aio call -> echo."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.grpc_port = free_port()
        self.http_port = free_port()
        self.processes: dict[str, subprocess.Popen[bytes]] = {}

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def start(self) -> None:
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        log = open(self.root / "floor.log", "ab")  # noqa: SIM115
        for name, argv in (
            ("floor grpc", ["grpc", str(self.grpc_port)]),
            ("floor http", ["http", str(self.http_port), str(self.grpc_port)]),
        ):
            self.processes[name] = subprocess.Popen(
                [sys.executable, __file__, *argv], env=env, stdout=log, stderr=subprocess.STDOUT
            )
        log.close()

    def wait_ready(self, seconds: float = 60.0) -> None:
        deadline = time.monotonic() + seconds
        while True:
            try:
                ready = httpx.get(f"{self.url}/v1/tenants/floor/events/ready", timeout=1)
                if ready.status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                log = (self.root / "floor.log").read_text()
                raise RuntimeError(f"the floor did not start: {log[-2000:]}")
            time.sleep(0.1)

    def pids(self) -> dict[str, int]:
        return {name: process.pid for name, process in self.processes.items()}

    def stop(self) -> None:
        for process in self.processes.values():
            process.terminate()
        for process in self.processes.values():
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def main(argv: list[str]) -> None:
    if argv[0] == "grpc":
        asyncio.run(serve_grpc(int(argv[1])))
    else:
        # uvicorn's defaults, as the gateway's: uvloop and httptools when installed.
        uvicorn.run(
            http_app(int(argv[2])),
            host="127.0.0.1",
            port=int(argv[1]),
            log_config=None,
            access_log=False,
        )


if __name__ == "__main__":
    main(sys.argv[1:])
