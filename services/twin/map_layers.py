"""The map service's layers as geofence shapes (read and kept by the kit's
`MapLayerReader`; one shape per layer and buffer)."""

from __future__ import annotations

from services.kit.bus import BusMessage
from services.kit.map_layers import MapLayerReader
from services.twin.domain.geofence import LayerShape

SUBJECT = "services/twin"


class MapLayers:
    """Geofence layers read from the map service as the twin itself."""

    def __init__(self, target: str, timeout: float, recheck_seconds: float = 60.0) -> None:
        self.reader = MapLayerReader(target, timeout, SUBJECT, recheck_seconds)
        self._shapes: dict[tuple[str, str, float], LayerShape] = {}

    @property
    def reads(self) -> int:
        """ListFeatures calls made, for tests and the bench."""
        return self.reader.reads

    @property
    def recheck_seconds(self) -> float:
        """How long a kept layer answers before it is checked for changes."""
        return self.reader.recheck_seconds

    @recheck_seconds.setter
    def recheck_seconds(self, seconds: float) -> None:
        self.reader.recheck_seconds = seconds

    async def shape(self, tenant: str, layer: str, buffer_m: float) -> LayerShape:
        geometry = await self.reader.geometry(tenant, layer)
        shape_key = (tenant, layer, buffer_m)
        shape = self._shapes.get(shape_key)
        if shape is None or shape.update_ms != geometry.update_ms:
            shape = self._shapes[shape_key] = LayerShape(geometry, buffer_m)
        return shape

    async def on_notice(self, message: BusMessage) -> None:
        await self.reader.on_notice(message)

    async def close(self) -> None:
        await self.reader.close()
