"""What a device may send: topics, sizes and JSON shapes the bridge refuses, and why."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from services.twin.mqtt_bridge.payload import Refusal, parse_payload, parse_topic

NOW = datetime(2026, 12, 3, 7, 0, tzinfo=UTC)


def test_a_topic_names_tenant_and_entity() -> None:
    address = parse_topic("grassroots/sh-jiading-anting-xingming/gauge-7/telemetry")
    assert address.tenant_path == "sh/jiading/anting/xingming"
    assert address.entity_name == "tenants/sh-jiading-anting-xingming/entities/gauge-7"


@pytest.mark.parametrize(
    "topic",
    [
        "grassroots/sh/gauge-7",
        "grassroots/sh/gauge-7/telemetry/extra",
        "other/sh/gauge-7/telemetry",
        "grassroots/SH/gauge-7/telemetry",
        "grassroots/sh/gauge 7/telemetry",
        "grassroots/sh/" + "g" * 65 + "/telemetry",
        "grassroots/sh/gauge-7/commands",
    ],
)
def test_other_topics_are_refused(topic: str) -> None:
    with pytest.raises(Refusal) as caught:
        parse_topic(topic)
    assert caught.value.reason == "topic"


def test_a_well_formed_message() -> None:
    message = parse_payload(
        b'{"key": "k", "time": "2026-12-03T14:59:00+08:00", "values": {"level_cm": 31.5}}', NOW
    )
    assert message.key == "k"
    assert message.values == {"level_cm": 31.5}
    assert message.observe_time == datetime(2026, 12, 3, 6, 59, tzinfo=UTC)


def test_without_a_time_the_reading_is_from_when_it_arrived() -> None:
    assert parse_payload(b'{"key": "k", "values": {"smoke": true}}', NOW).observe_time == NOW


@pytest.mark.parametrize(
    ("payload", "reason", "field"),
    [
        (b"x" * 5000, "oversized", "payload"),
        (b"not json", "malformed", "payload"),
        (b"\xff\xfe", "malformed", "payload"),
        (b"[1, 2]", "malformed", "payload"),
        (b'{"values": {"a": 1}}', "unauthenticated", "key"),
        (b'{"key": "", "values": {"a": 1}}', "unauthenticated", "key"),
        (b'{"key": "k"}', "malformed", "values"),
        (b'{"key": "k", "values": {}}', "malformed", "values"),
        (b'{"key": "k", "values": {"a": NaN}}', "malformed", "payload"),
        (b'{"key": "k", "values": {"a": Infinity}}', "malformed", "payload"),
        (b'{"key": "k", "values": {"a": 1e999}}', "malformed", "values.a"),
        (b'{"key": "k", "values": {"a": null}}', "malformed", "values.a"),
        (b'{"key": "k", "values": {"a": [1]}}', "malformed", "values.a"),
        (b'{"key": "k", "values": {"1a": 1}}', "malformed", "values.1a"),
        (b'{"key": "k", "values": {"a": 1}, "admin": true}', "malformed", "admin"),
        (b'{"key": "k", "time": "yesterday", "values": {"a": 1}}', "malformed", "time"),
        (b'{"key": "k", "time": "2026-12-03T07:00:00", "values": {"a": 1}}', "malformed", "time"),
        (b'{"key": "k", "time": 12, "values": {"a": 1}}', "malformed", "time"),
    ],
)
def test_malformed_messages_are_refused_naming_the_field(
    payload: bytes, reason: str, field: str
) -> None:
    with pytest.raises(Refusal) as caught:
        parse_payload(payload, NOW)
    assert (caught.value.reason, caught.value.field) == (reason, field)
    assert json.loads(caught.value.as_json())["reason"] == reason


def test_too_many_values_and_future_times_are_refused() -> None:
    many = json.dumps({"key": "k", "values": {f"a{i}": i for i in range(65)}}).encode()
    with pytest.raises(Refusal, match="at most 64"):
        parse_payload(many, NOW)
    ahead = (NOW + timedelta(hours=1)).isoformat()
    future = json.dumps({"key": "k", "time": ahead, "values": {"a": 1}}).encode()
    with pytest.raises(Refusal, match="future"):
        parse_payload(future, NOW)
