"""History answers: raw readings or min/max/mean/count buckets, paged by (series, time).

The store hands back each series' readings in the range as arrays; bucketing is one
`np.unique` plus `reduceat` per series, the same on both backends.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt


@dataclass(frozen=True)
class HistoryPoint:
    series_id: int
    time_ms: int
    count: int
    min: float
    max: float
    mean: float


def points_of(
    series_id: int,
    times: npt.NDArray[np.int64],
    values: npt.NDArray[np.float64],
    start_ms: int,
    bucket_ms: int,
) -> tuple[npt.NDArray[np.int64], list[HistoryPoint]]:
    """One series' points: each reading (bucket 0) or each non-empty bucket."""
    if not len(times):
        return times, []
    if bucket_ms <= 0:
        return times, [
            HistoryPoint(series_id, t, 1, v, v, v)
            for t, v in zip(times.tolist(), values.tolist(), strict=True)
        ]
    keys = start_ms + (times - start_ms) // bucket_ms * bucket_ms
    starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
    counts = np.diff(np.r_[starts, len(keys)])
    mins = np.minimum.reduceat(values, starts)
    maxs = np.maximum.reduceat(values, starts)
    means = np.add.reduceat(values, starts) / counts
    bucket_keys = keys[starts]
    return bucket_keys, [
        HistoryPoint(series_id, int(k), int(c), float(lo), float(hi), float(m))
        for k, c, lo, hi, m in zip(
            bucket_keys.tolist(),
            counts.tolist(),
            mins.tolist(),
            maxs.tolist(),
            means.tolist(),
            strict=True,
        )
    ]


def page(
    series: Iterable[tuple[int, npt.NDArray[np.int64], npt.NDArray[np.float64]]],
    start_ms: int,
    bucket_ms: int,
    limit: int,
    after: tuple[int, int] | None,
) -> tuple[list[HistoryPoint], tuple[int, int] | None]:
    """Up to `limit` points after the (series, time) cursor, ordered by series then time;
    returns the cursor of the next page (None on the last).

    Raw readings with the same time in one series share a cursor position, so a page
    never ends between them: it may run a few points over `limit` instead.
    """
    out: list[HistoryPoint] = []
    for series_id, times, values in series:
        if after is not None and series_id < after[0]:
            continue
        keys, points = points_of(series_id, times, values, start_ms, bucket_ms)
        first = 0
        if after is not None and series_id == after[0]:
            first = int(np.searchsorted(keys, after[1], side="right"))
        for point in points[first:]:
            if len(out) >= limit:
                last = out[-1]
                if (point.series_id, point.time_ms) != (last.series_id, last.time_ms):
                    return out, (last.series_id, last.time_ms)
            out.append(point)
    return out, None
