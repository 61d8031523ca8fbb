"""A server stream the client closes is finalised in another Context without an error."""

from __future__ import annotations

import asyncio
import contextvars
import logging

from google.protobuf import empty_pb2

from services.kit import context as ctx
from services.kit.interceptors import ServerInterceptor
from tests.conftest import principal_of

METHOD = "/grassroots.events.v1.EventService/StreamEvents"


class FakeContext:
    def __init__(self) -> None:
        self.metadata = (*principal_of("sh/jiading/anting").to_metadata(), ("x-request-id", "r1"))

    def invocation_metadata(self):
        return self.metadata

    def code(self):
        return None


async def endless(request, context):
    while True:
        yield ctx.current_principal().subject
        await asyncio.sleep(0)


async def test_a_stream_closed_from_another_context_logs_no_error(caplog):
    wrapped = ServerInterceptor("events", {METHOD: ""})._wrap_stream(endless, METHOD)
    stream = wrapped(empty_pb2.Empty(), FakeContext())
    loop = asyncio.get_running_loop()
    errors: list[BaseException] = []
    loop.set_exception_handler(lambda _, c: errors.append(c.get("exception")))
    caplog.set_level(logging.INFO)

    # The handler's task reads the first item, as the server does for the call ...
    first = await loop.create_task(stream.__anext__(), context=contextvars.copy_context())
    assert first == "users/test"
    # ... and the loop's async-generator finaliser closes it in a task of its own.
    await loop.create_task(stream.aclose(), context=contextvars.copy_context())

    assert errors == []
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []
    assert ctx.current_principal() is None


async def test_a_stream_closed_in_its_own_context_still_resets():
    wrapped = ServerInterceptor("events", {METHOD: ""})._wrap_stream(endless, METHOD)

    async def call() -> None:
        stream = wrapped(empty_pb2.Empty(), FakeContext())
        await stream.__anext__()
        assert ctx.current_principal() is not None
        await stream.aclose()
        assert ctx.current_principal() is None

    await asyncio.create_task(call())
