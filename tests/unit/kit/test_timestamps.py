from datetime import UTC, datetime

import pytest

from services.kit.errors import InvalidArgument
from services.kit.timestamps import EARLIEST, LATEST, parse_time


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-01T08:00:00Z", datetime(2026, 11, 1, 8, tzinfo=UTC)),
        ("2026-11-01T16:00:00+08:00", datetime(2026, 11, 1, 8, tzinfo=UTC)),
        (" 1970-01-01T00:00:00.5Z ", datetime(1970, 1, 1, 0, 0, 0, 500000, tzinfo=UTC)),
    ],
)
def test_times_are_read_into_utc(text, expected):
    assert parse_time(text, "filter") == expected


@pytest.mark.parametrize(
    ("text", "why"),
    [
        # Issue 11, finding 8: these overflowed datetime arithmetic (500s).
        ("9999-12-31T23:59:59.999999Z", "between the years"),
        ("9999-12-31T23:00:00-05:00", "between the years"),
        ("0001-01-01T00:00:00Z", "between the years"),
        ("0001-01-01T00:00:00+01:00", "between the years"),
        ("2026-11-01T08:00:00", "time zone"),
        ("yesterday", "RFC 3339"),
        ("", "RFC 3339"),
    ],
)
def test_bad_or_unbounded_times_name_the_field(text, why):
    with pytest.raises(InvalidArgument) as info:
        parse_time(text, "start_date")
    (violation,) = info.value.violations
    assert violation.field == "start_date"
    assert why in violation.description


def test_the_bounds_themselves_are_accepted():
    assert parse_time(EARLIEST.isoformat(), "f") == EARLIEST
    assert parse_time(LATEST.isoformat(), "f") == LATEST
