"""History as a log of batches, compacted into per-series chunks.

An ingest call writes ONE row: the batch's columns (series ids, times, values,
positions) as packed little-endian arrays, whatever the number of series in it. A
compaction in the background takes the oldest logged batches, regroups their readings
by series and writes one chunk row per series (its times and values packed the same
way), then deletes the logged batches, in one transaction. Reads merge the chunks of
a series with the readings still in the log, so a reading is visible from the moment
its batch commits. Both stores keep the same rows (SQLite BLOBs, PostgreSQL bytea), so
this module is the one place that packs and unpacks them.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from services.twin.domain.entities import Latest, Point
from services.twin.domain.ports import ReadingRows, SeriesReadings

I64 = np.dtype("<i8")
F64 = np.dtype("<f8")
Blob = bytes | None


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


def log_row(rows: ReadingRows) -> tuple[object, ...]:
    """One logged batch: (t_min, t_max, n, series, times, values, lons, lats)."""
    times = rows.observed_ms.astype(I64, copy=False)
    return (
        int(times.min()),
        int(times.max()),
        len(rows),
        rows.series_ids.astype(I64, copy=False).tobytes(),
        times.tobytes(),
        rows.values.astype(F64, copy=False).tobytes(),
        rows.longitudes.astype(F64).tobytes() if rows.longitudes is not None else None,
        rows.latitudes.astype(F64).tobytes() if rows.latitudes is not None else None,
    )


def from_log(batches: Sequence[Sequence[Blob]]) -> ReadingRows:
    """Logged batches (series, times, values, lons, lats) back into one set of columns;
    positions are NaN where a batch had none."""
    if not batches:
        empty = np.empty(0, I64)
        return ReadingRows(empty, empty, np.empty(0, F64))
    series = np.concatenate([np.frombuffer(b[0] or b"", I64) for b in batches])
    times = np.concatenate([np.frombuffer(b[1] or b"", I64) for b in batches])
    values = np.concatenate([np.frombuffer(b[2] or b"", F64) for b in batches])
    lon = lat = None
    if any(b[3] is not None for b in batches):
        lon = np.concatenate([_positions(b[3], b[0]) for b in batches])
        lat = np.concatenate([_positions(b[4], b[0]) for b in batches])
    return ReadingRows(series, times, values, lon, lat)


def _positions(blob: Blob, series: Blob) -> npt.NDArray[np.float64]:
    if blob is not None:
        return np.frombuffer(blob, F64)
    return np.full(len(series or b"") // 8, np.nan)


def chunks_of(rows: ReadingRows) -> Iterator[Chunk]:
    """The readings grouped by series, each group sorted by time (stable)."""
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


def _of_series(
    series_id: int, chunks: Sequence[Sequence[Blob]], log: ReadingRows
) -> tuple[
    npt.NDArray[np.int64],
    npt.NDArray[np.float64],
    npt.NDArray[np.float64] | None,
    npt.NDArray[np.float64] | None,
]:
    """A series' readings from its chunks (times, values, lons, lats) then the log."""
    mine = log.series_ids == series_id if len(log) else np.zeros(0, bool)
    parts_t = [np.frombuffer(c[0] or b"", I64) for c in chunks] + [log.observed_ms[mine]]
    parts_v = [np.frombuffer(c[1] or b"", F64) for c in chunks] + [log.values[mine]]
    times = np.concatenate(parts_t) if parts_t else np.empty(0, I64)
    values = np.concatenate(parts_v) if parts_v else np.empty(0, F64)
    lon = lat = None
    has_points = any(c[2] is not None for c in chunks) or log.longitudes is not None
    if has_points:
        lon = np.concatenate(
            [_positions(c[2], c[0]) for c in chunks]
            + [log.longitudes[mine] if log.longitudes is not None else np.full(mine.sum(), np.nan)]
        )
        lat = np.concatenate(
            [_positions(c[3], c[0]) for c in chunks]
            + [log.latitudes[mine] if log.latitudes is not None else np.full(mine.sum(), np.nan)]
        )
    return times, values, lon, lat


def readings_of(
    series_id: int,
    chunks: Sequence[Sequence[Blob]],
    log: ReadingRows,
    start_ms: int,
    end_ms: int,
) -> SeriesReadings:
    """One series' readings in [start, end), sorted by time (ties keep write order)."""
    times, values, lon, lat = _of_series(series_id, chunks, log)
    keep = np.flatnonzero((times >= start_ms) & (times < end_ms))
    keep = keep[np.argsort(times[keep], kind="stable")]
    return SeriesReadings(
        series_id,
        times[keep].astype(np.int64),
        values[keep].astype(np.float64),
        lon[keep] if lon is not None else None,
        lat[keep] if lat is not None else None,
    )


def newest_of(series_id: int, chunks: Sequence[Sequence[Blob]], log: ReadingRows) -> Latest | None:
    """The newest reading of a series (the last written wins a tie of times)."""
    times, values, lon, lat = _of_series(series_id, chunks, log)
    if not len(times):
        return None
    i = len(times) - 1 - int(np.argmax(times[::-1]))
    point = None
    if lon is not None and lat is not None and lon[i] == lon[i] and lat[i] == lat[i]:
        point = Point(float(lon[i]), float(lat[i]))
    return Latest(float(values[i]), int(times[i]), point)
