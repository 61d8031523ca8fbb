"""A map service layer's features, read once and kept, for components that test
positions against a layer (the twin's geofences, command's road network).

A layer's features are read once per (tenant, layer) with ListFeatures in pages of
10,000 as WKB, never per position. The copy is revalidated: a layer kept longer than
`recheck_seconds` is checked in the background with one GetLayer call, and read again
only when its `update_time` moved. Where the map service announces its layer writes on
a bus the caller shares (`map.changes`, ADR 23), such a notice starts that check at once
(`on_notice`). Until the check answers (and while the map service is down) the kept
geometry answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable

import grpc
import shapely

from grassroots.map.v1 import map_service_pb2 as map_pb
from grassroots.map.v1 import map_service_pb2_grpc as map_grpc
from services.kit import tenancy
from services.kit.bus import Bus, BusMessage
from services.kit.cache_notices import CacheNotices
from services.kit.client import open_channel
from services.kit.layer_geometry import LayerGeometry
from services.kit.principal import Principal
from services.kit.status import domain_error_from

PAGE = 10_000
NoticeHandler = Callable[[BusMessage], Awaitable[None]]
log = logging.getLogger(__name__)


class MapLayerReader:
    """Layers read from the map service as the calling component itself (`subject`, with
    map:read for the tenant asked about, so a tenant's rules see only its layers)."""

    def __init__(
        self, target: str, timeout: float, subject: str, recheck_seconds: float = 60.0
    ) -> None:
        self.channel = open_channel(target, default_timeout=timeout)
        self.stub = map_grpc.MapServiceStub(self.channel)
        self.subject = subject
        self.recheck_seconds = recheck_seconds
        self._kept: dict[tuple[str, str], tuple[LayerGeometry, float]] = {}
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}
        self._rechecks: dict[tuple[str, str], asyncio.Task[None]] = {}
        self._principals: dict[str, Principal] = {}
        self.reads = 0  # ListFeatures calls made, for tests and the benches

    def _as_service(self, tenant: str) -> Principal:
        found = self._principals.get(tenant)
        if found is None:
            found = self._principals[tenant] = Principal(
                self.subject, tenant, "service", scopes=frozenset({"map:read"})
            )
        return found

    async def geometry(self, tenant: str, layer: str) -> LayerGeometry:
        """The layer's features (`layer` is its resource name), read on first use."""
        key = (tenant, layer)
        kept = self._kept.get(key)
        if kept is None:
            async with self._locks.setdefault(key, asyncio.Lock()):
                kept = self._kept.get(key)
                if kept is None:
                    geometry = await self._read(tenant, layer, await self._update_ms(key))
                    kept = self._kept[key] = (geometry, time.monotonic())
        elif time.monotonic() - kept[1] > self.recheck_seconds and key not in self._rechecks:
            self._start_recheck(key)
        return kept[0]

    async def _update_ms(self, key: tuple[str, str]) -> int:
        tenant, layer = key
        try:
            got = await self.stub.GetLayer(
                map_pb.GetLayerRequest(name=layer),
                metadata=self._as_service(tenant).to_metadata(),
            )
        except grpc.aio.AioRpcError as exc:
            raise domain_error_from(exc, "map") from None
        return int(got.update_time.ToMilliseconds())

    async def _read(self, tenant: str, layer: str, update_ms: int) -> LayerGeometry:
        geometries: list[shapely.Geometry] = []
        token = ""
        while True:
            try:
                page = await self.stub.ListFeatures(
                    map_pb.ListFeaturesRequest(
                        parent=layer,
                        page_size=PAGE,
                        page_token=token,
                        geometry_encoding=map_pb.GEOMETRY_ENCODING_WKB,
                    ),
                    metadata=self._as_service(tenant).to_metadata(),
                )
            except grpc.aio.AioRpcError as exc:
                raise domain_error_from(exc, "map") from None
            self.reads += 1
            geometries.extend(shapely.from_wkb([f.geometry.wkb for f in page.features]))
            token = page.next_page_token
            if not token:
                return LayerGeometry(layer, tuple(geometries), update_ms)

    async def on_notice(self, message: BusMessage) -> None:
        """The map service says a layer changed ("<tenant path>:<layer id>"): check every
        kept copy of it now instead of at the next recheck."""
        tenant, _, layer_id = message.key.partition(":")
        name = f"{tenancy.tenant_name(tenant)}/layers/{layer_id}"
        for key in [k for k in self._kept if k[1] == name and k not in self._rechecks]:
            self._start_recheck(key)

    def _start_recheck(self, key: tuple[str, str]) -> None:
        task = asyncio.create_task(self._recheck(key))
        self._rechecks[key] = task
        task.add_done_callback(lambda _t: self._rechecks.pop(key, None))

    async def _recheck(self, key: tuple[str, str]) -> None:
        """Read the layer again if it changed since it was kept; keep it either way."""
        with contextlib.suppress(Exception):
            geometry, _ = self._kept[key]
            update_ms = await self._update_ms(key)
            if update_ms != geometry.update_ms:
                geometry = await self._read(key[0], key[1], update_ms)
                log.info("geofence layer %s changed; read again", key[1])
            self._kept[key] = (geometry, time.monotonic())

    async def close(self) -> None:
        for task in list(self._rechecks.values()):
            task.cancel()
        await self.channel.close()


async def follow_map_notices(
    bus_url: str, bus: Bus, on_notice: NoticeHandler
) -> CacheNotices | None:
    """On a shared Redis bus the map announces its layer writes (ADR 23): kept layers
    are checked at once instead of at the next recheck. Without it, or while Redis is
    unreachable at start, the recheck alone keeps them fresh."""
    if not bus_url.startswith(("redis://", "rediss://")):
        return None
    notices = CacheNotices(bus, "map", on_notice)
    try:
        await notices.start()
    except Exception as exc:
        log.warning("map layer notices not followed (%s); rechecking layers only", exc)
        return None
    return notices
