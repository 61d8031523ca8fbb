"""Log lines written inside a traced call carry its trace id; others do not."""

from __future__ import annotations

import json
import logging

from opentelemetry import trace
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

from services.kit.logging import JsonFormatter

TRACE_ID = 0x0AF7651916CD43DD8448EB211C80319C
SPAN_ID = 0xB7AD6B7169203331


def _line() -> dict:
    record = logging.LogRecord("grassroots.test", logging.INFO, __file__, 1, "hello", (), None)
    return json.loads(JsonFormatter("events").format(record))


def test_a_line_inside_a_span_names_its_trace():
    span = NonRecordingSpan(SpanContext(TRACE_ID, SPAN_ID, False, TraceFlags(1)))
    with trace.use_span(span):
        line = _line()
    assert line["trace_id"] == "0af7651916cd43dd8448eb211c80319c"
    assert line["span_id"] == "b7ad6b7169203331"


def test_a_line_outside_a_trace_has_no_trace_id():
    assert "trace_id" not in _line()
