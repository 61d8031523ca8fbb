"""Devices over the real broker into a real twin process: a reading published with
`mosquitto_pub` lands on the entity, refusals are answered on `<topic>/rejected`, and
`kill -9` of the twin in the middle of a stream loses no reading the broker acknowledged."""

from __future__ import annotations

import json
import subprocess
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import pytest

from grassroots.twin.v1 import twin_service_pb2 as pb
from grassroots.type.v1 import geo_pb2
from services.kit.principal import Principal
from tests.integration.twin_process import TwinProcess
from tests.unit.twin_mqtt.broker import Device

XINGMING = "sh/jiading/anting/xingming"
XINGMING_ID = "sh-jiading-anting-xingming"
XIANGYANG_ID = "sh-jiading-anting-xiangyang"
OPERATOR = Principal(
    subject="users/operator",
    tenant="sh/jiading/anting",
    kind="user",
    scopes=frozenset({"twin:read", "twin:write", "twin:ingest"}),
)


def metadata() -> tuple[tuple[str, bytes], ...]:
    return OPERATOR.to_metadata()


@pytest.fixture
def twin(tmp_path: Path) -> Iterator[TwinProcess]:
    process = TwinProcess(tmp_path)
    process.start()
    yield process
    process.stop()


def create_gauge(stub, tenant_id: str, entity_id: str) -> None:  # type: ignore[no-untyped-def]
    stub.CreateEntity(
        pb.CreateEntityRequest(
            parent=f"tenants/{tenant_id}",
            entity_id=entity_id,
            entity=pb.Entity(
                entity_type="WaterLevelGauge",
                location=geo_pb2.GeoPoint(longitude=121.16, latitude=31.29),
            ),
        ),
        metadata=metadata(),
        timeout=10,
    )


def device_key(stub, name: str) -> pb.DeviceKey:  # type: ignore[no-untyped-def]
    return stub.IssueDeviceKey(pb.IssueDeviceKeyRequest(name=name), metadata=metadata(), timeout=10)


def latest(stub, name: str, prop: str) -> float | None:  # type: ignore[no-untyped-def]
    entity = stub.GetEntity(pb.GetEntityRequest(name=name), metadata=metadata(), timeout=10)
    return next((p.value for p in entity.properties if p.property == prop), None)


def eventually(check, seconds: float = 20.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.1)


def test_mosquitto_pub_sets_the_entity_and_refusals_are_answered(twin: TwinProcess) -> None:
    gauge = f"tenants/{XINGMING_ID}/entities/gauge-east"
    with grpc.insecure_channel(twin.address) as channel:
        stub = twin.stub(channel)
        create_gauge(stub, XINGMING_ID, "gauge-east")
        create_gauge(stub, XIANGYANG_ID, "gauge-west")
        issued = device_key(stub, gauge)
        assert issued.topic == f"{twin.topic_root}/{XINGMING_ID}/gauge-east/telemetry"
        body = json.dumps({"key": issued.key, "values": {"level_cm": 31.5}})
        subprocess.run(
            ["mosquitto_pub", "-h", "127.0.0.1", "-q", "1", "-t", issued.topic, "-m", body],
            check=True,
            timeout=20,
        )
        assert eventually(lambda: latest(stub, gauge, "level_cm") == 31.5)

        device = Device()
        try:
            device.listen(f"{twin.topic_root}/+/+/telemetry/rejected")
            time.sleep(0.3)
            west = f"{twin.topic_root}/{XIANGYANG_ID}/gauge-west/telemetry"
            attempts = [
                (
                    issued.topic,
                    {"key": issued.key, "values": {"level_cm": 5000}},
                    "invalid_reading",
                ),
                (issued.topic, {"key": issued.key, "values": {"rain_mm": 1}}, "invalid_reading"),
                (west, {"key": issued.key, "values": {"level_cm": 1}}, "wrong_tenant"),
                (issued.topic, "{not json", "malformed"),
                (issued.topic, {"key": "grd_x.y.z", "values": {"level_cm": 1}}, "unauthenticated"),
                (issued.topic, "x" * 10_000, "oversized"),
            ]
            for topic, payload, _ in attempts:
                text = payload if isinstance(payload, str) else json.dumps(payload)
                device.publish(topic, text)
            heard = [json.loads(device.next_heard(20)[1]) for _ in attempts]
            assert sorted(h["reason"] for h in heard) == sorted(r for _, _, r in attempts)
            assert all(h["message"] for h in heard)
            # Nothing refused was stored, the other tenant's gauge untouched, and the
            # bridge is still running.
            assert latest(stub, gauge, "level_cm") == 31.5
            west_name = f"tenants/{XIANGYANG_ID}/entities/gauge-west"
            assert latest(stub, west_name, "level_cm") is None
            device.publish(issued.topic, json.dumps({"key": issued.key, "values": {"level_cm": 7}}))
            assert eventually(lambda: latest(stub, gauge, "level_cm") == 7.0)
        finally:
            device.close()


class Publisher(threading.Thread):
    """Publishes `count` readings at QoS 1, round-robin over the gauges, each with its own
    observed time; counts what the broker acknowledged."""

    def __init__(self, topics: list[tuple[str, str]], count: int, start: datetime) -> None:
        super().__init__(daemon=True)
        self.topics = topics
        self.count = count
        self.start_time = start
        self.acknowledged: list[tuple[int, int]] = []  # (gauge index, observed ms)

    def run(self) -> None:
        device = Device()
        try:
            for i in range(self.count):
                gauge = i % len(self.topics)
                topic, key = self.topics[gauge]
                observed = self.start_time + timedelta(milliseconds=i)
                body = {"key": key, "time": observed.isoformat(), "values": {"level_cm": i % 1000}}
                device.publish(topic, json.dumps(body))  # returns once the broker acknowledged
                self.acknowledged.append((gauge, int(observed.timestamp() * 1000)))
                time.sleep(0.004)
        finally:
            device.close()


def stored_times(stub, name: str, start: datetime) -> set[int]:  # type: ignore[no-untyped-def]
    answer = stub.QueryHistory(
        pb.QueryHistoryRequest(
            parent=f"tenants/{XINGMING_ID}",
            entities=[name],
            property="level_cm",
            start_time=_ts(start - timedelta(seconds=1)),
            end_time=_ts(datetime.now(UTC) + timedelta(minutes=1)),
            page_size=10_000,
        ),
        metadata=metadata(),
        timeout=20,
    )
    return {p.time.ToMilliseconds() for p in answer.points}


def _ts(moment: datetime):  # type: ignore[no-untyped-def]
    from google.protobuf.timestamp_pb2 import Timestamp

    stamp = Timestamp()
    stamp.FromDatetime(moment)
    return stamp


def test_kill_9_during_ingest_loses_no_acknowledged_reading(twin: TwinProcess) -> None:
    gauges = [f"gauge-{i}" for i in range(10)]
    with grpc.insecure_channel(twin.address) as channel:
        stub = twin.stub(channel)
        topics = []
        for gauge in gauges:
            create_gauge(stub, XINGMING_ID, gauge)
            issued = device_key(stub, f"tenants/{XINGMING_ID}/entities/{gauge}")
            topics.append((issued.topic, issued.key))
    start = datetime.now(UTC) - timedelta(hours=1)
    publisher = Publisher(topics, 600, start)
    publisher.start()
    assert eventually(lambda: len(publisher.acknowledged) >= 150)
    twin.kill9()  # mid-stream: some readings in flight, some unacknowledged by the bridge
    at_kill = len(publisher.acknowledged)
    time.sleep(1.0)
    # The broker went on accepting readings while the twin was down.
    assert len(publisher.acknowledged) > at_kill
    twin.start()  # same data, same MQTT session: the broker hands over what it kept
    publisher.join(120)
    assert not publisher.is_alive()
    assert len(publisher.acknowledged) == 600
    with grpc.insecure_channel(twin.address) as channel:
        stub = twin.stub(channel)

        def missing() -> set[tuple[int, int]]:
            stored = {
                (index, t)
                for index, gauge in enumerate(gauges)
                for t in stored_times(stub, f"tenants/{XINGMING_ID}/entities/{gauge}", start)
            }
            return set(publisher.acknowledged) - stored

        deadline = time.monotonic() + 60
        lost = missing()
        while lost and time.monotonic() < deadline:
            time.sleep(0.5)
            lost = missing()
        assert not lost, f"{len(lost)} acknowledged readings lost, e.g. {sorted(lost)[:5]}"
