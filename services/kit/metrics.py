"""Prometheus metrics for gRPC servers and clients (calls, latency, status by method)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram, start_http_server

_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)

SERVER_HANDLED = Counter(
    "grpc_server_handled_total",
    "RPCs completed on the server, by method and status code.",
    ["grpc_service", "grpc_method", "grpc_code"],
)
SERVER_LATENCY = Histogram(
    "grpc_server_handling_seconds",
    "Time to handle an RPC on the server.",
    ["grpc_service", "grpc_method"],
    buckets=_BUCKETS,
)
CLIENT_HANDLED = Counter(
    "grpc_client_handled_total",
    "RPCs completed by this process as a client, by peer method and status code.",
    ["grpc_service", "grpc_method", "grpc_code"],
)
# Bus lag: how long a message waited on its stream before a consumer took it (the age of
# its entry id, which is the publish time in milliseconds).
_LAG_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0, 1800.0)
BUS_DELIVERY_LAG = Histogram(
    "grassroots_bus_delivery_lag_seconds",
    "Time from a message's publish to a consumer group member taking it.",
    ["stream", "group"],
    buckets=_LAG_BUCKETS,
)
BUS_DEAD_LETTERS = Counter(
    "grassroots_bus_dead_letters_total",
    "Messages a consumer gave up on after too many failed deliveries.",
    ["stream", "group"],
)
OUTBOX_PUBLISHED = Counter(
    "grassroots_outbox_published_total", "Outbox rows published on the bus.", ["stream"]
)
OUTBOX_PUBLISH_FAILURES = Counter(
    "grassroots_outbox_publish_failures_total",
    "Rounds of the outbox relay that could not publish (the bus was down).",
    ["stream"],
)
SLA_BREACHES = Counter(
    "grassroots_sla_breaches_total",
    "Tasks that missed an SLA deadline and were escalated, by deadline.",
    ["deadline"],
)
SINGLETON_RUNNING = Gauge(
    "grassroots_singleton_running",
    "1 while this replica runs the singleton job (it holds the job's lease), else 0.",
    ["lease"],
)


def split_method(full_method: str) -> tuple[str, str]:
    """'/grassroots.map.v1.MapService/LocatePoints' -> ('grassroots.map.v1.MapService', ...)."""
    _, _, rest = full_method.partition("/")
    service, _, method = rest.partition("/")
    return service or "unknown", method or "unknown"


def record_server_call(full_method: str, code: str, seconds: float) -> None:
    service, method = split_method(full_method)
    SERVER_HANDLED.labels(service, method, code).inc()
    SERVER_LATENCY.labels(service, method).observe(seconds)


def record_client_call(full_method: str, code: str) -> None:
    service, method = split_method(full_method)
    CLIENT_HANDLED.labels(service, method, code).inc()


def record_sla_breach(deadline: str) -> None:
    SLA_BREACHES.labels(deadline).inc()


def serve_metrics(port: int, host: str) -> None:
    """Expose /metrics on its own port, so scraping never competes with RPC traffic."""
    if port:
        start_http_server(port, addr=host)
