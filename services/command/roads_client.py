"""Each village's road network, from the map service's road layer.

The layer (`tenants/{village}/layers/{road_layer}`) is read and kept by the kit's
`MapLayerReader` and turned into a graph once per layer version. A village without
the layer, or a map service that cannot answer, gives None: dispatch then measures in
straight lines rather than waiting. A missing layer is asked about again only after
`recheck_seconds`, so villages without roads cost one GetLayer call a while.
"""

from __future__ import annotations

import logging
import time

from services.command.domain.roads import RoadNetwork
from services.kit import tenancy
from services.kit.bus import BusMessage
from services.kit.errors import DomainError, NotFound
from services.kit.map_layers import MapLayerReader

SUBJECT = "services/command"
log = logging.getLogger(__name__)


class MapRoads:
    def __init__(
        self, target: str, timeout: float, layer_id: str, recheck_seconds: float = 60.0
    ) -> None:
        self.reader = MapLayerReader(target, timeout, SUBJECT, recheck_seconds)
        self.layer_id = layer_id
        self.recheck_seconds = recheck_seconds
        self._networks: dict[str, RoadNetwork | None] = {}
        self._missing: dict[str, float] = {}

    async def network(self, village: str) -> RoadNetwork | None:
        missing_since = self._missing.get(village)
        if missing_since is not None and time.monotonic() - missing_since < self.recheck_seconds:
            return None
        layer = f"{tenancy.tenant_name(village)}/layers/{self.layer_id}"
        try:
            geometry = await self.reader.geometry(village, layer)
        except NotFound:
            self._missing[village] = time.monotonic()
            return None
        except DomainError as exc:
            log.warning("road layer of %s unavailable (%s); straight lines", village, exc)
            return None
        self._missing.pop(village, None)
        kept = self._networks.get(village)
        if kept is None or kept.update_ms != geometry.update_ms or kept.layer != geometry.layer:
            kept = self._networks[village] = RoadNetwork.of(geometry)
        return kept

    async def on_notice(self, message: BusMessage) -> None:
        """The map says a layer changed: a village that had no road layer looks again."""
        tenant, _, layer_id = message.key.partition(":")
        if layer_id == self.layer_id:
            self._missing.pop(tenant, None)
        await self.reader.on_notice(message)

    async def close(self) -> None:
        await self.reader.close()
