"""What flows into the twin from devices and out of it to watchers, wired to the hub.

`HubSink` lets the MQTT bridge write through the hub's ingest (the same checks, store
and rules as gRPC and REST); `start_feeds` builds the change log the hub appends to
after each commit, and starts the bridge when `GRASSROOTS_TWIN_MQTT_ENABLED` is set.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.kit.lease import Singletons
from services.kit.principal import Principal
from services.twin.domain import stream
from services.twin.domain.ingest import Columns
from services.twin.domain.service import EntityChange as HubChange
from services.twin.domain.service import TwinHub
from services.twin.mqtt_bridge.bridge import MqttBridge
from services.twin.mqtt_bridge.config import BridgeSettings
from services.twin.mqtt_bridge.device_keys import DeviceKeys
from services.twin.mqtt_bridge.ports import DeviceReading, ReadingRefusal

BRIDGE_LEASE = "twin.mqtt-bridge"


class WatchSettings(BaseSettings):
    """`GRASSROOTS_TWIN_WATCH_*`: how many recent changes watchers can catch up on."""

    model_config = SettingsConfigDict(
        env_prefix="GRASSROOTS_TWIN_WATCH_", extra="ignore", frozen=True
    )

    log_capacity: int = Field(default=stream.DEFAULT_CAPACITY, ge=10, le=10_000_000)


UNSUPPORTED_VALUE = "the twin holds numbers, booleans and positions {longitude, latitude}"


class HubSink:
    """The bridge's TelemetrySink: device readings as one columnar ingest call."""

    def __init__(self, hub: TwinHub) -> None:
        self._hub = hub

    async def ingest(
        self, principal: Principal, readings: Sequence[DeviceReading]
    ) -> Sequence[ReadingRefusal]:
        refusals: list[ReadingRefusal] = []
        kept: list[int] = []  # column position -> reading index
        entities: list[str] = []
        properties: list[str] = []
        values: list[float] = []
        times: list[int] = []
        lons: list[float] = []
        lats: list[float] = []
        for index, reading in enumerate(readings):
            converted = _number_or_point(reading.value)
            if converted is None:
                refusals.append(ReadingRefusal(index, "values", UNSUPPORTED_VALUE))
                continue
            value, point = converted
            kept.append(index)
            entities.append(reading.entity)
            properties.append(reading.attribute)
            values.append(value)
            times.append(int(reading.observe_time.timestamp() * 1000))
            lons.append(point[0] if point else math.nan)
            lats.append(point[1] if point else math.nan)
        if not kept:
            return refusals
        points = any(not math.isnan(x) for x in lons)
        columns = Columns.of(
            entities,
            properties,
            values,
            observed_ms=times,
            longitudes=lons if points else None,
            latitudes=lats if points else None,
        )
        outcome = await self._hub.ingest(principal, principal.tenant, columns)
        described = {r.index: r for r in outcome.rejections}
        for position, code in enumerate(outcome.reasons.tolist()):
            if code:
                rejection = described.get(position)
                why = rejection.description if rejection else "refused by the entity's model"
                refusals.append(ReadingRefusal(kept[position], "values", why))
        return refusals


def _number_or_point(value: Any) -> tuple[float, tuple[float, float] | None] | None:
    if isinstance(value, bool):
        return (1.0 if value else 0.0), None
    if isinstance(value, (int, float)):
        return float(value), None
    if isinstance(value, dict) and set(value) == {"longitude", "latitude"}:
        lon, lat = value["longitude"], value["latitude"]
        if all(isinstance(c, (int, float)) and not isinstance(c, bool) for c in (lon, lat)):
            return 0.0, (float(lon), float(lat))
    return None


def to_stream_change(change: HubChange) -> stream.EntityChange:
    location = getattr(change, "location", None)  # a Point, when the hub reports one
    return stream.EntityChange(
        tenant=change.tenant,
        entity_id=change.entity_id,
        entity_type=change.entity_type,
        sequence=change.seq,
        kind=change.kind,
        location=(location.longitude, location.latitude) if location is not None else None,
        values=change.properties,
    )


@dataclass
class Feeds:
    """The change log, the device keys and the bridge (None when MQTT is off)."""

    log: stream.ChangeLog
    keys: DeviceKeys
    bridge: MqttBridge | None  # None when MQTT is off or the bridge runs under a lease
    topic_root: str


async def start_feeds(
    hub: TwinHub,
    closers: list[Callable[[], object]],
    bridge_settings: BridgeSettings | None = None,
    watch_settings: WatchSettings | None = None,
    singletons: Singletons | None = None,
) -> Feeds:
    """With `singletons` (replicas on a shared database) the bridge runs under a lease in
    one replica at a time, stopped with them; without, it starts now and stops first."""
    settings = bridge_settings or BridgeSettings()
    log = stream.ChangeLog((watch_settings or WatchSettings()).log_capacity)
    hub.subscribe_changes(lambda changes: log.append(to_stream_change(c) for c in changes))
    keys = DeviceKeys()
    bridge = None
    if settings.enabled and singletons is not None:
        # Replicas share one broker session (one client id): one bridge at a time.
        async def run_bridge(until: asyncio.Event) -> None:
            held = MqttBridge(settings, HubSink(hub), keys)
            await held.start()
            try:
                await until.wait()
            finally:
                await held.close()

        singletons.start(BRIDGE_LEASE, run_bridge)
    elif settings.enabled:
        bridge = MqttBridge(settings, HubSink(hub), keys)
        await bridge.start()
        closers.insert(0, bridge.close)  # stop taking messages before the store closes
    return Feeds(log, keys, bridge, settings.topic_root)
