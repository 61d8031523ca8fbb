"""From a list or statistics request's filter text to typed filters a store applies."""

from __future__ import annotations

from services.events.domain.lifecycle import FINISHED_STATES
from services.events.domain.model import State
from services.kit import tenancy
from services.kit.errors import InvalidArgument
from services.kit.filtering import parse_terms
from services.kit.timestamps import parse_time

FILTERABLE = {
    "grid_cell": ("=",),
    "village": ("=",),
    "category": ("=",),
    "state": ("=",),
    "status": ("=",),
    "create_time": (">=", ">", "<=", "<"),
    "description": (":",),
    "parent": ("=",),
}
_TIME_KEYS = {">=": "created_from", ">": "created_after", "<=": "created_to", "<": "created_before"}
# Unfinished events, and those nothing more will happen to (unless reopened).
STATUSES = {
    "open": frozenset(State) - FINISHED_STATES,
    "closed": FINISHED_STATES,
}
ORDERS = {"": "desc", "create_time desc": "desc", "create_time asc": "asc"}


def to_filters(filter_text: str, order_by: str = "") -> dict[str, object]:
    """Typed filters: equality strings, datetimes for time bounds, a set of `states`
    for a status, `text`, `order`."""
    filters: dict[str, object] = {}
    for term in parse_terms(filter_text, FILTERABLE):
        if term.field == "create_time":
            filters[_TIME_KEYS[term.op]] = parse_time(term.value, "filter", what="create_time")
        elif term.field == "status":
            if term.value not in STATUSES:
                raise InvalidArgument.field("filter", 'status is "open" or "closed"')
            if "states" in filters:
                raise InvalidArgument.field("filter", "'status' appears twice")
            filters["states"] = STATUSES[term.value]
        elif term.field == "description":
            if not term.value.strip():
                raise InvalidArgument.field("filter", "description : needs a word")
            filters["text"] = term.value
        else:
            if term.field == "state" and term.value not in {s.value for s in State}:
                raise InvalidArgument.field("filter", f"unknown state {term.value!r}")
            if term.field in filters:
                raise InvalidArgument.field("filter", f"{term.field!r} appears twice")
            value = term.value
            if term.field == "village":  # stored as a path; the id form means the same
                value = tenancy.path_of(value, "filter")
            filters[term.field] = value
    order = ORDERS.get(" ".join(order_by.lower().split()))
    if order is None:
        raise InvalidArgument.field("order_by", 'use "create_time desc" or "create_time asc"')
    if order == "asc":
        filters["order"] = "asc"
    return filters
