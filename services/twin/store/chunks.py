"""History as chunks: one row per series per batch, its readings packed as arrays.

A batch of 100,000 readings over 1,000 series becomes 1,000 rows whose times and
values are little-endian int64 and float64 arrays, instead of 100,000 rows and
100,000 index entries. Both stores keep the same chunk rows (SQLite in BLOBs,
PostgreSQL in bytea), so reading them back is the same numpy code on either.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from services.twin.domain.entities import Latest, Point
from services.twin.domain.ports import ReadingRows, SeriesReadings

I64 = np.dtype("<i8")
F64 = np.dtype("<f8")


@dataclass(frozen=True)
class Chunk:
    series_id: int
    t_min: int
    t_max: int
    count: int
    times: bytes
    values: bytes
    longitudes: bytes | None
    latitudes: bytes | None

    def row(self) -> tuple[object, ...]:
        return (
            self.series_id,
            self.t_min,
            self.t_max,
            self.count,
            self.times,
            self.values,
            self.longitudes,
            self.latitudes,
        )


def chunks_of(rows: ReadingRows) -> Iterator[Chunk]:
    """The readings grouped by series, each group sorted by time."""
    if not len(rows):
        return
    order = np.lexsort((rows.observed_ms, rows.series_ids))
    series = rows.series_ids[order]
    times = rows.observed_ms[order].astype(I64, copy=False)
    values = rows.values[order].astype(F64, copy=False)
    lon = rows.longitudes[order].astype(F64) if rows.longitudes is not None else None
    lat = rows.latitudes[order].astype(F64) if rows.latitudes is not None else None
    starts = np.flatnonzero(np.r_[True, series[1:] != series[:-1]])
    ends = np.r_[starts[1:], len(series)]
    for a, b in zip(starts.tolist(), ends.tolist(), strict=True):
        yield Chunk(
            int(series[a]),
            int(times[a]),
            int(times[b - 1]),
            b - a,
            times[a:b].tobytes(),
            values[a:b].tobytes(),
            lon[a:b].tobytes() if lon is not None else None,
            lat[a:b].tobytes() if lat is not None else None,
        )


def decode(
    series_id: int,
    blobs: list[tuple[bytes, bytes, bytes | None, bytes | None]],
    start_ms: int,
    end_ms: int,
) -> SeriesReadings:
    """Chunk rows of one series -> its readings in [start, end), sorted by time (stable)."""
    times = (
        np.concatenate([np.frombuffer(t, I64) for t, _, _, _ in blobs])
        if blobs
        else np.empty(0, I64)
    )
    values = (
        np.concatenate([np.frombuffer(v, F64) for _, v, _, _ in blobs])
        if blobs
        else np.empty(0, F64)
    )
    has_points = bool(blobs) and all(lo is not None for _, _, lo, _ in blobs)
    lon = (
        np.concatenate([np.frombuffer(lo, F64) for _, _, lo, _ in blobs if lo])
        if has_points
        else None
    )
    lat = (
        np.concatenate([np.frombuffer(la, F64) for _, _, _, la in blobs if la])
        if has_points
        else None
    )
    keep = (times >= start_ms) & (times < end_ms)
    order = np.argsort(times[keep], kind="stable")
    return SeriesReadings(
        series_id,
        times[keep][order].astype(np.int64),
        values[keep][order].astype(np.float64),
        lon[keep][order] if lon is not None else None,
        lat[keep][order] if lat is not None else None,
    )


def newest_of(blobs: list[tuple[bytes, bytes, bytes | None, bytes | None]]) -> Latest | None:
    """The newest reading among chunks (the last one written wins a tie of times)."""
    best: Latest | None = None
    for times_blob, values_blob, lons, lats in blobs:
        times = np.frombuffer(times_blob, I64)
        if not len(times):
            continue
        i = len(times) - 1 - int(np.argmax(times[::-1]))
        if best is None or int(times[i]) >= best.observed_ms:
            point = None
            if lons is not None and lats is not None:
                lon = float(np.frombuffer(lons, F64)[i])
                lat = float(np.frombuffer(lats, F64)[i])
                point = Point(lon, lat) if lon == lon and lat == lat else None
            best = Latest(float(np.frombuffer(values_blob, F64)[i]), int(times[i]), point)
    return best
