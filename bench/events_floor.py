"""The floor of the events benchmark: what one HTTP hop plus one gRPC hop cost in Python.

A bare FastAPI route that forwards the request body (or the id) in one unary grpc.aio
call to a bare grpc.aio server that answers with what it got. No authentication, no
validation, no storage: nothing the gateway and the events service could do without.
bench_events.py drives it with the same wrk settings as the platform and prints the
platform's rate as a fraction of this one, measured in the same run.

    python bench/events_floor.py grpc PORT
    python bench/events_floor.py http PORT GRPC_PORT
"""

from __future__ import annotations

import asyncio
import sys

import grpc
import uvicorn
from fastapi import FastAPI, Request, Response

METHOD = "/floor.Floor/Echo"


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

    @app.get("/v1/tenants/{tenant}/events/{event}")
    async def get(tenant: str, event: str) -> Response:
        answer = await echo()(b'{"id":"' + event.encode() + b'"}')
        return Response(answer, media_type="application/json")

    return app


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
