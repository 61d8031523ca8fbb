"""Dashboard figures from per-event rows: counts, SLA breach rate, time to resolve."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta, timezone

from services.events.domain.categories import Category
from services.events.domain.lifecycle import OPEN_STATES
from services.events.domain.model import Statistics, StatisticsRow

CHINA_STANDARD_TIME = timezone(timedelta(hours=8))


def summarise(
    rows: Iterable[StatisticsRow], now: datetime, categories: Mapping[str, Category]
) -> Statistics:
    """Days are counted in China Standard Time, as village staff read them.

    An event breaches its SLA when it was resolved later than its category allows, or
    is still open past that time; categories without an SLA are left out of the rate.
    """
    by_state: Counter[str] = Counter()
    by_category: Counter[str] = Counter()
    by_grid: Counter[str] = Counter()
    by_village: Counter[str] = Counter()
    by_day: Counter[str] = Counter()
    with_sla = breached = resolved = 0
    hours = 0.0
    total = 0
    for row in rows:
        total += 1
        by_state[row.state.value] += 1
        by_category[row.category] += 1
        by_grid[row.grid_cell] += 1
        by_village[row.village] += 1
        by_day[row.create_time.astimezone(CHINA_STANDARD_TIME).date().isoformat()] += 1
        if row.resolved_time is not None:
            resolved += 1
            hours += (row.resolved_time - row.create_time).total_seconds() / 3600
        category = categories.get(row.category)
        if category is None or category.sla_minutes <= 0:
            continue
        due = row.create_time + timedelta(minutes=category.sla_minutes)
        if row.resolved_time is not None:
            with_sla += 1
            breached += row.resolved_time > due
        elif row.state in OPEN_STATES:
            with_sla += 1
            breached += now > due
    return Statistics(
        total=total,
        by_state=dict(by_state),
        by_category=dict(by_category),
        by_grid_cell=dict(by_grid),
        by_day=dict(sorted(by_day.items())),
        sla_breach_rate=breached / with_sla if with_sla else 0.0,
        resolved_count=resolved,
        mean_hours_to_resolve=hours / resolved if resolved else 0.0,
        by_village=dict(by_village),
    )
