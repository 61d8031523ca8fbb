"""A unary call slower than SLOW_CALL_SECONDS is logged at WARNING with its duration, so a
call that holds a component past the gateway's deadline shows up; a quick one stays at
INFO, and a server stream, which lasts as long as its client, is never slow."""

from __future__ import annotations

import asyncio
import logging

import pytest
from google.protobuf import empty_pb2

from services.kit import interceptors
from services.kit.interceptors import ServerInterceptor
from tests.unit.kit.test_stream_close import FakeContext

METHOD = "/grassroots.command.v1.PlansService/CreateServicePlan"


async def sleepy(request, context):
    await asyncio.sleep(0.05)
    return empty_pb2.Empty()


async def stream(request, context):
    await asyncio.sleep(0.05)
    yield empty_pb2.Empty()


def _lines(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "grassroots.rpc" and r.msg.startswith("rpc ")]


async def test_a_slow_unary_call_is_a_warning(caplog, monkeypatch):
    caplog.set_level(logging.INFO, logger="grassroots.rpc")
    wrapped = ServerInterceptor("command", {METHOD: ""})._wrap_unary(sleepy, METHOD)
    await wrapped(empty_pb2.Empty(), FakeContext())
    monkeypatch.setattr(interceptors, "SLOW_CALL_SECONDS", 0.01)
    await wrapped(empty_pb2.Empty(), FakeContext())
    quick, slow = _lines(caplog)
    assert quick.levelno == logging.INFO
    assert slow.levelno == logging.WARNING
    assert "slow" in slow.getMessage() and slow.duration_ms >= 50
    assert slow.method == METHOD


async def test_a_long_stream_is_not_slow(caplog, monkeypatch):
    caplog.set_level(logging.INFO, logger="grassroots.rpc")
    monkeypatch.setattr(interceptors, "SLOW_CALL_SECONDS", 0.01)
    wrapped = ServerInterceptor("command", {METHOD: ""})._wrap_stream(stream, METHOD)
    assert [item async for item in wrapped(empty_pb2.Empty(), FakeContext())]
    (line,) = _lines(caplog)
    assert line.levelno == logging.INFO
