"""Latest values in this process's memory: the embedded backend's latest state.

Series ids are small dense integers (the store numbers them), so the state is four
arrays indexed by series id: a batch reads and writes it with whole-array operations.
Filled at start from the history in the store (the newest reading of each series), so
a restart loses nothing that was acknowledged.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from services.twin.domain.entities import Latest, Point
from services.twin.domain.ports import LatestBatch


class MemoryLatest:
    def __init__(self, initial: dict[int, Latest] | None = None) -> None:
        self._times = np.full(0, -1, dtype=np.int64)
        self._values = np.zeros(0)
        self._lon = np.full(0, np.nan)
        self._lat = np.full(0, np.nan)
        if initial:
            ids = np.fromiter(initial, np.int64, len(initial))
            points = [v.point for v in initial.values()]
            self._grow(int(ids.max()))
            self._times[ids] = [v.observed_ms for v in initial.values()]
            self._values[ids] = [v.value for v in initial.values()]
            self._lon[ids] = [p.longitude if p else np.nan for p in points]
            self._lat[ids] = [p.latitude if p else np.nan for p in points]

    def _grow(self, largest: int) -> None:
        if largest < len(self._times):
            return
        size = max(largest + 1, 2 * len(self._times), 1024)
        extra = size - len(self._times)
        self._times = np.concatenate([self._times, np.full(extra, -1, dtype=np.int64)])
        self._values = np.concatenate([self._values, np.zeros(extra)])
        self._lon = np.concatenate([self._lon, np.full(extra, np.nan)])
        self._lat = np.concatenate([self._lat, np.full(extra, np.nan)])

    async def get_many(self, series_ids: list[int]) -> list[Latest | None]:
        out: list[Latest | None] = []
        for sid in series_ids:
            if sid >= len(self._times) or self._times[sid] < 0:
                out.append(None)
                continue
            lon, lat = float(self._lon[sid]), float(self._lat[sid])
            point = Point(lon, lat) if lon == lon and lat == lat else None
            out.append(Latest(float(self._values[sid]), int(self._times[sid]), point))
        return out

    async def times_of(self, series_ids: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
        if len(series_ids):
            self._grow(int(series_ids.max()))
        return self._times[series_ids]

    async def put_newer(self, batch: LatestBatch) -> None:
        if not len(batch):
            return
        self._grow(int(batch.series_ids.max()))
        newer = batch.observed_ms >= self._times[batch.series_ids]
        ids = batch.series_ids[newer]
        self._times[ids] = batch.observed_ms[newer]
        self._values[ids] = batch.values[newer]
        self._lon[ids] = batch.longitudes[newer] if batch.longitudes is not None else np.nan
        self._lat[ids] = batch.latitudes[newer] if batch.latitudes is not None else np.nan

    async def close(self) -> None:
        return None
