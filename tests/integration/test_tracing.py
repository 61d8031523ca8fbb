"""One trace crosses the platform: gateway -> events -> map, then through the outbox and
the bus to the command service's consumer, and through command's outbox to its reader.

The processes run as `make run` starts them, with `GRASSROOTS_TRACE_EXPORTER=otlp`
pointed at an OTLP/gRPC receiver this test serves (the real exporter, the real wire
format: no in-process shortcut). A report is posted with a W3C `traceparent`; the
receiver must get spans of that trace from all four processes, the last one the
command service's handling of the `event.reported` message.
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections import defaultdict
from concurrent import futures

import grpc
import httpx
import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.trace.v1 import trace_pb2

from devstack.stack import Stack, StackConfig
from tests.conftest import seed_demo_identities
from tests.integration.conftest import GENEROUS_LIMITS
from tests.integration.test_events_reliability import TOWN_EVENTS, report_body, valid_points

TRACE_ID = os.urandom(16).hex()
TRACEPARENT = f"00-{TRACE_ID}-{os.urandom(8).hex()}-01"


class Receiver(trace_service_pb2_grpc.TraceServiceServicer):
    """An OTLP trace receiver: (service name, span name, kind) of every span, by trace."""

    def __init__(self) -> None:
        self.spans: dict[str, list[tuple[str, str, int]]] = defaultdict(list)
        self.lock = threading.Lock()

    def Export(self, request, context):
        with self.lock:
            for resource_spans in request.resource_spans:
                service = next(
                    (
                        a.value.string_value
                        for a in resource_spans.resource.attributes
                        if a.key == "service.name"
                    ),
                    "",
                )
                for scope in resource_spans.scope_spans:
                    for span in scope.spans:
                        self.spans[span.trace_id.hex()].append((service, span.name, span.kind))
        return trace_service_pb2.ExportTraceServiceResponse()

    def of_trace(self, trace_id: str) -> list[tuple[str, str, int]]:
        with self.lock:
            return list(self.spans.get(trace_id, []))


@pytest.mark.integration
def test_one_trace_crosses_gateway_events_map_bus_and_consumer(
    tmp_path, demo_gpkg, demo_identities, grid_index
):
    receiver = Receiver()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(receiver, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    config = StackConfig.on_free_ports(tmp_path / "data", log_dir=tmp_path / "logs")
    config.extra_env.update(GENEROUS_LIMITS)
    config.extra_env.update(
        {
            "GRASSROOTS_TRACE_EXPORTER": "otlp",
            "GRASSROOTS_OTLP_ENDPOINT": f"http://127.0.0.1:{port}",
        }
    )
    config.data_dir.mkdir(parents=True)
    shutil.copy(demo_gpkg, config.map_file)
    seed_demo_identities(demo_identities, config.data_dir)
    stack = Stack(config)
    try:
        stack.start_all()
        stack.wait_ready(90)
        stack.install_demo_identities()
        stack.install_demo_command()  # routing: the report becomes a task, a fact of its own
        (lon, lat) = valid_points(grid_index, 1)[0]
        response = httpx.post(
            config.gateway_url + TOWN_EVENTS,
            json=report_body(lon, lat, 1),
            headers={**stack.api_headers(), "traceparent": TRACEPARENT},
            timeout=30,
        )
        assert response.status_code == 201, response.text

        wanted = {
            ("grassroots-gateway", trace_pb2.Span.SPAN_KIND_SERVER),
            ("grassroots-events", trace_pb2.Span.SPAN_KIND_SERVER),  # CreateEvent
            ("grassroots-events", trace_pb2.Span.SPAN_KIND_CLIENT),  # its LocatePoints
            ("grassroots-map", trace_pb2.Span.SPAN_KIND_SERVER),
            ("grassroots-command", trace_pb2.Span.SPAN_KIND_CONSUMER),
        }
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            seen = {(service, kind) for service, _, kind in receiver.of_trace(TRACE_ID)}
            if wanted <= seen:
                break
            time.sleep(0.2)
        spans = receiver.of_trace(TRACE_ID)
        seen = {(service, kind) for service, _, kind in spans}
        assert wanted <= seen, f"missing {wanted - seen}; the trace had {sorted(spans)}"
        names = {name for service, name, _ in spans}
        assert "/grassroots.map.v1.MapService/LocatePoints" in names
        assert "events process" in names, "the consumer's span names the stream it read"
        # The task it made is a fact on the command stream, through command's own outbox,
        # which command reads back (event sync): the trace goes on there.
        deadline = time.monotonic() + 30
        while "command process" not in names and time.monotonic() < deadline:
            time.sleep(0.2)
            names = {name for _, name, _ in receiver.of_trace(TRACE_ID)}
        assert "command process" in names, sorted(names)
        spans = receiver.of_trace(TRACE_ID)
        print(f"trace {TRACE_ID}: {len(spans)} spans from {sorted({s for s, _, _ in spans})}")
    finally:
        stack.stop_all()
        server.stop(None)
