"""The bridge over the real broker: what devices publish reaches the twin's ingest, what
is wrong is refused with a reason on `<topic>/rejected`, and the bridge keeps running.

The sink here records what it is given (the twin's own ingest is exercised in
tests/integration/test_twin_mqtt.py); the broker, the client library and the wire are real.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Sequence

import pytest

from services.kit import signing
from services.kit.errors import Unavailable
from services.kit.principal import Principal
from services.twin.mqtt_bridge.bridge import MqttBridge
from services.twin.mqtt_bridge.config import BridgeSettings
from services.twin.mqtt_bridge.device_keys import DeviceKeys
from services.twin.mqtt_bridge.ports import DeviceReading, ReadingRefusal
from tests.unit.twin_mqtt.broker import Device

XINGMING_ID = "sh-jiading-anting-xingming"
XIANGYANG_ID = "sh-jiading-anting-xiangyang"


class RecordingSink:
    """Keeps what it stores; refuses readings above `limit`; fails `outages` times first."""

    def __init__(self) -> None:
        self.stored: list[tuple[str, DeviceReading]] = []
        self.limit = 1000.0
        self.outages = 0
        self.arrived = asyncio.Event()

    async def ingest(
        self, principal: Principal, readings: Sequence[DeviceReading]
    ) -> Sequence[ReadingRefusal]:
        if self.outages:
            self.outages -= 1
            raise Unavailable("store is down")
        refusals = []
        for index, reading in enumerate(readings):
            if isinstance(reading.value, (int, float)) and reading.value > self.limit:
                refusals.append(ReadingRefusal(index, reading.attribute, "above the model's range"))
            else:
                self.stored.append((principal.tenant, reading))
        self.arrived.set()
        return refusals

    async def wait_for(self, count: int) -> None:
        async with asyncio.timeout(20):
            while len(self.stored) < count:
                self.arrived.clear()
                await self.arrived.wait()


@pytest.fixture
def keys() -> DeviceKeys:
    return DeviceKeys(signing.KeyRing.parse(signing.generate_keys_value("dk")))


@pytest.fixture
async def bridge(keys: DeviceKeys) -> AsyncIterator[tuple[MqttBridge, RecordingSink, str]]:
    root = f"gr{uuid.uuid4().hex[:12]}"
    sink = RecordingSink()
    settings = BridgeSettings(enabled=True, topic_root=root, client_id=f"bridge-{root}")
    running = MqttBridge(settings, sink, keys)
    await running.start()
    assert running.subscribed
    yield running, sink, root
    await running.close()


@pytest.fixture
def device() -> AsyncIterator[Device]:
    publisher = Device()
    yield publisher  # type: ignore[misc]
    publisher.close()


def _topic(root: str, tenant: str, entity: str) -> str:
    return f"{root}/{tenant}/{entity}/telemetry"


async def test_a_device_reading_reaches_the_twin(bridge, device, keys) -> None:
    running, sink, root = bridge
    key = keys.issue(f"tenants/{XINGMING_ID}/entities/gauge-7")
    body = {"key": key, "time": "2026-12-01T07:00:00Z", "values": {"level_cm": 31.5}}
    await asyncio.to_thread(device.publish, _topic(root, XINGMING_ID, "gauge-7"), json.dumps(body))
    await sink.wait_for(1)
    tenant, reading = sink.stored[0]
    assert tenant == "sh/jiading/anting/xingming"
    assert reading.entity == f"tenants/{XINGMING_ID}/entities/gauge-7"
    assert (reading.attribute, reading.value) == ("level_cm", 31.5)
    assert reading.observe_time.isoformat() == "2026-12-01T07:00:00+00:00"
    assert running.stats["accepted"] == 1


async def test_bad_messages_are_refused_counted_answered_and_the_bridge_goes_on(
    bridge, device, keys
) -> None:
    running, sink, root = bridge
    gauge = _topic(root, XINGMING_ID, "gauge-7")
    device.listen(f"{root}/+/+/telemetry/rejected")
    gauge_key = keys.issue(f"tenants/{XINGMING_ID}/entities/gauge-7")
    cases = [
        (gauge, b"{not json", "malformed"),
        (gauge, b"x" * 5000, "oversized"),
        (
            gauge,
            json.dumps({"key": "grd_forged.a.b", "values": {"level_cm": 1}}),
            "unauthenticated",
        ),
        # A Xingming device publishing into Xiangyang's topic.
        (
            _topic(root, XIANGYANG_ID, "gauge-7"),
            json.dumps({"key": gauge_key, "values": {"level_cm": 1}}),
            "wrong_tenant",
        ),
        (
            _topic(root, XINGMING_ID, "gauge-8"),
            json.dumps({"key": gauge_key, "values": {"level_cm": 1}}),
            "wrong_entity",
        ),
        (gauge, json.dumps({"key": gauge_key, "values": {"level_cm": 5000}}), "invalid_reading"),
    ]
    for topic, payload, _ in cases:
        await asyncio.to_thread(device.publish, topic, payload)
    answers = {}
    for _ in cases:
        topic, body = await asyncio.to_thread(device.next_heard)
        answers.setdefault(topic, []).append(json.loads(body)["reason"])
    assert sorted(r for rs in answers.values() for r in rs) == sorted(
        reason for _, _, reason in cases
    )
    assert answers[f"{_topic(root, XIANGYANG_ID, 'gauge-7')}/rejected"] == ["wrong_tenant"]
    for _, _, reason in cases:
        assert running.stats[f"refused:{reason}"] >= 1
    assert sink.stored == []
    # Still running: the next good reading is stored.
    good = {"key": gauge_key, "values": {"level_cm": 12.0}}
    await asyncio.to_thread(device.publish, gauge, json.dumps(good))
    await sink.wait_for(1)
    assert sink.stored[0][1].value == 12.0


async def test_a_fleet_key_writes_any_entity_of_its_subtree(bridge, device, keys) -> None:
    _, sink, root = bridge
    fleet = keys.issue("tenants/sh-jiading-anting")
    for entity in ("counter-1", "counter-2"):
        body = json.dumps({"key": fleet, "values": {"count": 3}})
        await asyncio.to_thread(device.publish, _topic(root, XINGMING_ID, entity), body)
    await sink.wait_for(2)
    assert {r.entity.rsplit("/", 1)[1] for _, r in sink.stored} == {"counter-1", "counter-2"}


async def test_a_store_outage_is_waited_out_not_dropped(bridge, device, keys) -> None:
    running, sink, root = bridge
    sink.outages = 3
    key = keys.issue(f"tenants/{XINGMING_ID}/entities/gauge-7")
    body = json.dumps({"key": key, "values": {"level_cm": 2}})
    await asyncio.to_thread(device.publish, _topic(root, XINGMING_ID, "gauge-7"), body)
    await sink.wait_for(1)
    assert running.stats["retries"] == 3
    assert running.stats["accepted"] == 1


async def test_a_stalled_commit_does_not_overflow_the_brokers_queue(bridge, device, keys) -> None:
    """Mosquitto keeps 20 unacknowledged messages in flight to an MQTT 3.1.1 client and
    queues 1,000 behind them, dropping the rest: a commit stalled for a few seconds at
    village scale lost readings. The bridge's window (MQTT 5 Receive Maximum) takes them
    all while the store is stuck, and every one is stored when it resumes."""
    running, sink, root = bridge
    gate = asyncio.Event()
    ingest = sink.ingest

    async def stuck(principal, readings):
        await gate.wait()
        return await ingest(principal, readings)

    sink.ingest = stuck
    key = keys.issue(f"tenants/{XINGMING_ID}")
    count = 2_500  # more than 20 in flight + 1,000 queued

    def publish_all() -> None:
        infos = [
            device.client.publish(
                _topic(root, XINGMING_ID, f"gauge-{i % 50}"),
                json.dumps({"key": key, "values": {"level_cm": i / 10}}),
                qos=1,
            )
            for i in range(count)
        ]
        for info in infos:
            info.wait_for_publish(timeout=30)

    await asyncio.to_thread(publish_all)
    await asyncio.sleep(1.0)  # the broker has handed over what it will
    gate.set()
    await sink.wait_for(count)
    assert sorted(r.value for _, r in sink.stored) == [i / 10 for i in range(count)]
    assert running.stats["accepted"] == count
