"""The intake tells fresh reports from imports of history by when they were published."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from google.protobuf.timestamp_pb2 import Timestamp

from grassroots.events.v1 import events_service_pb2 as pb
from services.command.intake import backdated_by
from services.kit.bus import BusMessage, Delivery


def delivery_at(published: datetime) -> Delivery:
    message = BusMessage("event.reported", "k", "sh", 1, b"")
    return Delivery(f"{int(published.timestamp() * 1000)}-0", message, 1)


def event_at(created: datetime) -> pb.Event:
    stamp = Timestamp()
    stamp.FromDatetime(created)
    return pb.Event(name="tenants/sh/events/e", create_time=stamp)


def test_a_report_published_as_it_was_made_is_not_backdated():
    now = datetime(2026, 12, 3, 8, 0, tzinfo=UTC)
    assert abs(backdated_by(delivery_at(now), event_at(now - timedelta(milliseconds=40)))) < (
        timedelta(seconds=1)
    )


def test_an_import_of_last_weeks_report_is_backdated_by_days():
    now = datetime(2026, 12, 3, 8, 0, tzinfo=UTC)
    assert backdated_by(delivery_at(now), event_at(now - timedelta(days=6))) > timedelta(days=5)
