"""Handler profiles: what a valid one holds, and where a reported position lies.

Positions come from phones, which in China report GCJ-02; they are kept in WGS84,
converted as the events service converts reports.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable

import numpy as np

from services.command.domain.model import HandlerProfile, Position, Shift, is_name
from services.kit import crs
from services.kit.errors import FieldViolation, InvalidArgument

_HANDLER_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}\Z")
_USER = re.compile(r"^users/[A-Za-z0-9_-]{1,64}\Z")
_HHMM = re.compile(r"^([01][0-9]|2[0-3]):([0-5][0-9])\Z")
MAX_CAPACITY = 100
MAX_LIST = 20


def storage_position(longitude: float, latitude: float, reported_crs: str, field: str) -> Position:
    """A reported position in WGS84; a bad CRS or coordinate names `field`."""
    name = crs.normalise_crs(reported_crs, f"{field}.crs")
    xs, ys = np.array([longitude]), np.array([latitude])
    try:
        crs.check_ranges(xs, ys, f"{field}.longitude", f"{field}.latitude", name)
    except InvalidArgument as exc:  # one point, not an array: no index in the field name
        raise InvalidArgument(
            [FieldViolation(v.field.removesuffix("[0]"), v.description) for v in exc.violations]
        ) from None
    lon, lat = crs.to_storage(xs, ys, name)
    crs.check_in_china(float(lon[0]), float(lat[0]), f"{field}.longitude", f"{field}.latitude")
    return Position(float(lon[0]), float(lat[0]))


def validate(profile: HandlerProfile, prefix: str = "handler_profile.") -> None:
    """INVALID_ARGUMENT naming every wrong field, before anything is stored."""
    wrong: list[FieldViolation] = []

    def need(ok: bool, field: str, description: str) -> None:
        if not ok:
            wrong.append(FieldViolation(prefix + field, description))

    need(bool(_HANDLER_ID.match(profile.id)), "name", "handler id: 1-64 letters, digits, . _ -")
    need(bool(_USER.match(profile.user)), "user", "is required: the user's subject, users/{id}")
    need(bool(profile.roles), "roles", "at least one role, such as grid_worker")
    for field, values in (("roles", profile.roles), ("skills", profile.skills)):
        need(len(values) <= MAX_LIST, field, f"at most {MAX_LIST}")
        need(all(is_name(v) for v in values), field, "lower-case names such as grid_worker")
    need(len(profile.teams) <= MAX_LIST, "teams", f"at most {MAX_LIST}")
    need(all(is_name(v) for v in profile.teams), "teams", "lower-case names")
    need(1 <= profile.capacity <= MAX_CAPACITY, "capacity", f"1 to {MAX_CAPACITY} open tasks")
    need(len(profile.display_name) <= 200, "display_name", "at most 200 characters")
    # Empty is "no name" (the contract cannot tell it from unset); blank is a mistake.
    need(
        not profile.display_name or bool(profile.display_name.strip()),
        "display_name",
        "must not be blank: a name, or leave it out",
    )
    need(
        not any(unicodedata.category(c) in ("Cc", "Zl", "Zp") for c in profile.display_name),
        "display_name",
        "one line of text: no newlines or other control characters",
    )
    need(len(profile.shifts) <= MAX_LIST, "shifts", f"at most {MAX_LIST}")
    for i, shift in enumerate(profile.shifts):
        _shift(shift, f"shifts[{i}]", need)
    if wrong:
        raise InvalidArgument(wrong)


def _shift(shift: Shift, field: str, need: Callable[[bool, str, str], None]) -> None:
    need(all(1 <= d <= 7 for d in shift.weekdays), f"{field}.weekdays", "ISO weekdays 1 to 7")
    need(bool(_HHMM.match(shift.start)), f"{field}.start", "HH:MM, 00:00 to 23:59")
    need(bool(_HHMM.match(shift.end)), f"{field}.end", "HH:MM, 00:00 to 23:59")
