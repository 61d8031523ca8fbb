"""Traces across processes with OpenTelemetry; off unless an exporter is configured.

`GRASSROOTS_TRACE_EXPORTER=otlp` sends spans to `GRASSROOTS_OTLP_ENDPOINT` (an OTLP/gRPC
collector). Then the gateway's HTTP requests, every gRPC call (client and server) and
every bus delivery handled are spans, and the W3C `traceparent` travels with them: in
gRPC metadata, and through the bus in the message headers, copied from the outbox row
that recorded the change in the request's trace. Log lines written inside a span carry
its trace id. Off (the default) the API is a no-op: no spans, no headers, no cost.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Literal

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.kit.config import load_settings

log = logging.getLogger("grassroots.tracing")

TRACEPARENT = "traceparent"
_tracer = trace.get_tracer("grassroots")
_enabled = False


class TracingSettings(BaseSettings):
    """Read by every process."""

    model_config = SettingsConfigDict(env_prefix="GRASSROOTS_", extra="ignore", frozen=True)

    trace_exporter: Literal["none", "otlp"] = Field(
        "none", description="otlp: send spans to GRASSROOTS_OTLP_ENDPOINT; none: no tracing"
    )
    otlp_endpoint: str = Field("http://127.0.0.1:4317", description="an OTLP/gRPC collector")
    trace_sample_ratio: float = Field(
        1.0, ge=0, le=1, description="share of new traces kept (a caller's choice is followed)"
    )


def configure_tracing(service: str) -> bool:
    """Install the exporter the settings choose, once at process start; whether on."""
    global _enabled
    settings = load_settings(TracingSettings)
    if settings.trace_exporter == "none":
        return False
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

    provider = TracerProvider(
        resource=Resource.create({"service.name": f"grassroots-{service}"}),
        sampler=ParentBased(TraceIdRatioBased(settings.trace_sample_ratio)),
    )
    exporter = OTLPSpanExporter(endpoint=settings.otlp_endpoint, insecure=True)
    # Short delay: spans of a process that stops soon after still leave (shutdown flushes).
    provider.add_span_processor(BatchSpanProcessor(exporter, schedule_delay_millis=500))
    trace.set_tracer_provider(provider)
    _enabled = True
    log.info("tracing to %s", settings.otlp_endpoint)
    return True


def enabled() -> bool:
    return _enabled


def shutdown() -> None:
    """Send the spans still batched (a stopping process)."""
    provider = trace.get_tracer_provider()
    flush = getattr(provider, "shutdown", None)
    if _enabled and flush is not None:
        flush()


def server_interceptors() -> list[Any]:
    """The gRPC server's span per call, continuing the caller's trace."""
    if not _enabled:
        return []
    from opentelemetry.instrumentation.grpc import aio_server_interceptor

    return [aio_server_interceptor()]


def client_interceptors() -> list[Any]:
    """A span per outbound call, its traceparent in the call's metadata."""
    if not _enabled:
        return []
    from opentelemetry.instrumentation.grpc import aio_client_interceptors

    return list(aio_client_interceptors())


def instrument_http(app: Any) -> None:
    """The gateway's span per HTTP request, continuing a client's traceparent."""
    if _enabled:
        from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

        FastAPIInstrumentor.instrument_app(app, excluded_urls="healthz,metrics")


def current_traceparent() -> str:
    """The W3C traceparent of the current span ("" outside a trace): what an outbox row
    keeps so the bus message continues the request's trace."""
    if not _enabled:
        return ""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier.get(TRACEPARENT, "")


def trace_ids() -> tuple[str, str] | None:
    """(trace id, span id) in hex of the current span, for log lines."""
    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return None
    return format(context.trace_id, "032x"), format(context.span_id, "016x")


@contextlib.contextmanager
def consuming_many(stream: str, headers: Sequence[Mapping[str, str]]) -> Iterator[None]:
    """A span for handling several bus messages at once, linked to the trace of each."""
    if not _enabled:
        yield
        return
    links = []
    for one in headers:
        if TRACEPARENT in one:
            context = trace.get_current_span(propagate.extract({TRACEPARENT: one[TRACEPARENT]}))
            links.append(trace.Link(context.get_span_context()))
    with _tracer.start_as_current_span(
        f"{stream} process",
        kind=trace.SpanKind.CONSUMER,
        links=links,
        attributes={
            "messaging.system": "redis",
            "messaging.destination.name": stream,
            "messaging.batch.message_count": len(headers),
        },
    ):
        yield


@contextlib.contextmanager
def consuming(stream: str, headers: Mapping[str, str]) -> Iterator[None]:
    """A span for handling one bus message, a child of the trace its headers carry."""
    if not _enabled:
        yield
        return
    parent = propagate.extract(
        {TRACEPARENT: headers[TRACEPARENT]} if TRACEPARENT in headers else {}
    )
    token = otel_context.attach(parent)
    try:
        with _tracer.start_as_current_span(
            f"{stream} process",
            kind=trace.SpanKind.CONSUMER,
            attributes={"messaging.system": "redis", "messaging.destination.name": stream},
        ):
            yield
    finally:
        otel_context.detach(token)
