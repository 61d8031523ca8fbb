"""The bridge between the MQTT broker and the twin's ingest.

paho-mqtt runs the connection in its own thread and hands each message to the asyncio
loop; one consumer takes whatever has arrived (up to `max_batch` messages), checks
topic, payload and key, stores the readings in one ingest call per tenant and only then
sends the PUBACKs (`manual_ack`). The session is MQTT 5 so the bridge can tell the
broker how many unacknowledged messages it may hold (Receive Maximum): under MQTT
3.1.1 Mosquitto sends a client only `max_inflight_messages` (20) at a time and queues at
most `max_queued_messages` (1000) behind them, dropping the rest, so one slow commit at
village scale lost readings. A refused message is acknowledged too (it will never
become valid), counted by reason, and answered on `<topic>/rejected`. A twin that
cannot store (database down) is retried with back-off while the messages stay
unacknowledged; nothing a device sent is dropped because the store was slow.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from prometheus_client import Counter as MetricCounter

from services.kit.errors import Unavailable
from services.kit.principal import Principal
from services.twin.mqtt_bridge.config import BridgeSettings
from services.twin.mqtt_bridge.device_keys import DeviceKeys
from services.twin.mqtt_bridge.payload import (
    DeviceMessage,
    Refusal,
    TopicAddress,
    parse_payload,
    parse_topic,
    rejection_topic,
    subscription,
)
from services.twin.mqtt_bridge.ports import DeviceReading, ReadingRefusal, TelemetrySink

log = logging.getLogger("grassroots.twin.mqtt")

MESSAGES = MetricCounter(
    "grassroots_twin_mqtt_messages_total",
    "MQTT telemetry messages handled by the bridge, by outcome.",
    ["outcome"],
)
REFUSALS = MetricCounter(
    "grassroots_twin_mqtt_refusals_total",
    "MQTT telemetry messages refused, by reason.",
    ["reason"],
)
INGEST_SCOPE = "twin:ingest"
BRIDGE_SUBJECT = "services/twin-mqtt-bridge"
_RETRY_FIRST_SECONDS = 0.1
_RETRY_MAX_SECONDS = 5.0


@dataclass
class _Checked:
    """A message that passed the bridge's checks, with where its readings go."""

    message: mqtt.MQTTMessage
    generation: int
    address: TopicAddress
    content: DeviceMessage


class MqttBridge:
    """Subscribes to every tenant's telemetry topics and feeds the twin."""

    def __init__(self, settings: BridgeSettings, sink: TelemetrySink, keys: DeviceKeys) -> None:
        self.settings = settings
        self._sink = sink
        self._keys = keys
        # Counts since start: "received", "accepted", "readings", "refused:<reason>".
        self.stats: Counter[str] = Counter()
        self._inbox: asyncio.Queue[tuple[int, mqtt.MQTTMessage]] = asyncio.Queue()
        self._generation = 0
        self._subscribed = asyncio.Event()
        self._consumer: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=settings.client_id,
            protocol=mqtt.MQTTv5,
            manual_ack=True,
        )
        if settings.username:
            self._client.username_pw_set(settings.username, settings.password or None)
        self._client.reconnect_delay_set(1, 10)
        self._client.on_connect = self._on_connect
        self._client.on_subscribe = self._on_subscribe
        self._client.on_message = self._on_message

    # -- paho's thread ------------------------------------------------------------------

    def _on_connect(self, client: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if reason.is_failure:
            log.warning("MQTT broker refused the bridge: %s", reason)
            return
        self._generation += 1
        client.subscribe(subscription(self.settings.topic_root), qos=1)
        log.info("MQTT bridge connected to %s:%d", self.settings.host, self.settings.port)

    def _on_subscribe(self, _c: mqtt.Client, _u: Any, _mid: int, codes: Any, _p: Any) -> None:
        if any(code.is_failure for code in codes):
            log.warning("MQTT broker refused the bridge's subscription: %s", codes)
            return
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._subscribed.set)

    def _on_message(self, _c: mqtt.Client, _u: Any, message: mqtt.MQTTMessage) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._inbox.put_nowait, (self._generation, message))

    # -- life cycle -----------------------------------------------------------------------

    async def start(self, wait_seconds: float = 10.0) -> None:
        """Connect, subscribe and start consuming; returns once the subscription holds
        (or after `wait_seconds`, the client going on trying to reach the broker)."""
        self._loop = asyncio.get_running_loop()
        self._client.connect_async(
            self.settings.host,
            self.settings.port,
            keepalive=30,
            clean_start=False,
            properties=self._connect_properties(),
        )
        self._client.loop_start()
        self._consumer = asyncio.create_task(self._consume(), name="mqtt-bridge")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._subscribed.wait(), wait_seconds)
        if not self._subscribed.is_set():
            log.warning("MQTT broker %s:%d not reached yet", self.settings.host, self.settings.port)

    def _connect_properties(self) -> Properties:
        """A persistent session (kept `session_expiry_seconds` after a disconnect, so a
        killed twin finds its messages) and a wide in-flight window: messages the broker
        has sent wait in the bridge's inbox, not in the broker's bounded queue."""
        properties = Properties(PacketTypes.CONNECT)
        properties.SessionExpiryInterval = self.settings.session_expiry_seconds
        properties.ReceiveMaximum = self.settings.receive_maximum
        return properties

    @property
    def subscribed(self) -> bool:
        return self._subscribed.is_set()

    async def close(self) -> None:
        if self._consumer is not None:
            self._consumer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._consumer
        self._client.disconnect()
        await asyncio.to_thread(self._client.loop_stop)

    # -- the consumer ---------------------------------------------------------------------

    async def _consume(self) -> None:
        while True:
            batch = [await self._inbox.get()]
            while len(batch) < self.settings.max_batch and not self._inbox.empty():
                batch.append(self._inbox.get_nowait())
            try:
                await self.handle(batch)
            except asyncio.CancelledError:
                raise
            except Exception:  # the bridge keeps running whatever one batch did
                log.exception("MQTT batch of %d failed; left unacknowledged", len(batch))

    async def handle(self, batch: Sequence[tuple[int, mqtt.MQTTMessage]]) -> None:
        """Check, store and acknowledge one batch of messages."""
        received = datetime.now(UTC)
        by_tenant: dict[str, list[_Checked]] = {}
        for generation, message in batch:
            self.stats["received"] += 1
            try:
                checked = self._check(generation, message, received)
            except Refusal as refusal:
                self._refuse(message, refusal)
                self._ack(generation, message)
                continue
            by_tenant.setdefault(checked.address.tenant_path, []).append(checked)
        for tenant_path, items in by_tenant.items():
            await self._store(tenant_path, items)

    def _check(self, generation: int, message: mqtt.MQTTMessage, received: datetime) -> _Checked:
        address = parse_topic(message.topic, self.settings.topic_root)
        content = parse_payload(message.payload, received, self.settings.max_payload_bytes)
        grant = self._keys.verify(content.key)
        if grant is None:
            raise Refusal("unauthenticated", "key", "the device key is not valid")
        why = grant.allows(address.tenant_path, address.entity_id)
        if why == "wrong_tenant":
            raise Refusal(why, "topic", "the key is not for this tenant's topics")
        if why is not None:
            raise Refusal(why, "topic", "the key is for another entity")
        return _Checked(message, generation, address, content)

    async def _store(self, tenant_path: str, items: list[_Checked]) -> None:
        readings: list[DeviceReading] = []
        owner: list[int] = []  # readings[i] came from items[owner[i]]
        for position, item in enumerate(items):
            for attribute, value in item.content.values.items():
                readings.append(
                    DeviceReading(
                        item.address.entity_name, attribute, value, item.content.observe_time
                    )
                )
                owner.append(position)
        principal = Principal(
            subject=BRIDGE_SUBJECT,
            tenant=tenant_path,
            kind="service",
            scopes=frozenset({INGEST_SCOPE}),
        )
        refusals = await self._ingest_until_stored(principal, readings)
        refused_items: dict[int, ReadingRefusal] = {}
        for refusal in refusals:
            refused_items.setdefault(owner[refusal.index], refusal)
        self.stats["readings"] += len(readings) - len(refusals)
        for position, item in enumerate(items):
            refused = refused_items.get(position)
            if refused is None:
                self.stats["accepted"] += 1
                MESSAGES.labels("accepted").inc()
            else:
                reading = readings[refused.index]
                self._refuse(
                    item.message,
                    Refusal("invalid_reading", f"values.{reading.attribute}", refused.reason),
                )
            self._ack(item.generation, item.message)

    async def _ingest_until_stored(
        self, principal: Principal, readings: Sequence[DeviceReading]
    ) -> Sequence[ReadingRefusal]:
        delay = _RETRY_FIRST_SECONDS
        while True:
            try:
                return await self._sink.ingest(principal, readings)
            except (Unavailable, OSError, TimeoutError) as exc:
                self.stats["retries"] += 1
                log.warning("twin store unavailable (%s); retrying in %.1fs", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, _RETRY_MAX_SECONDS)

    def _refuse(self, message: mqtt.MQTTMessage, refusal: Refusal) -> None:
        self.stats[f"refused:{refusal.reason}"] += 1
        MESSAGES.labels("refused").inc()
        REFUSALS.labels(refusal.reason).inc()
        log.info("MQTT %s refused: %s (%s)", message.topic, refusal.reason, refusal.field)
        if refusal.reason != "topic":
            self._client.publish(rejection_topic(message.topic), refusal.as_json(), qos=0)

    def _ack(self, generation: int, message: mqtt.MQTTMessage) -> None:
        """PUBACK on the connection the message came by; after a reconnect the broker
        sends unacknowledged messages again, and storing them twice is harmless."""
        if generation == self._generation and message.qos > 0:
            self._client.ack(message.mid, message.qos)
