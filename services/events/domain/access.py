"""Who may see an event and who may take each action on it.

Scopes say what kind of call a caller may make (`events:read`, `events:write`); this
module says which events and which moves. A caller's relation to an event is one or
more `Actor`s, and `MAY` is the one table of which actors take which action of
`services.events.domain.lifecycle`. The same rules hold for people and app keys:
people get `events:handle` and `events:manage` through their roles (grid workers
handle, staff manage), apps through the scopes their key was given.
"""

from __future__ import annotations

from dataclasses import replace
from enum import StrEnum

from services.events.domain.lifecycle import Action
from services.events.domain.model import Event, TimelineEntry
from services.kit import masking
from services.kit.errors import PermissionDenied
from services.kit.principal import Principal

HANDLE_SCOPE = "events:handle"
MANAGE_SCOPE = "events:manage"
# District auditors read everything below them, changing nothing.
AUDIT_SCOPE = "audit:read"


class Actor(StrEnum):
    REPORTER = "reporter"  # the caller reported this event (a resident, an app, a worker)
    HANDLER = "handler"  # holds events:handle: grid workers, handling apps
    STAFF = "staff"  # holds events:manage: village, town and district staff
    SERVICE = "service"  # another component (command, twin), signed as a service


_A = Action
_HANDS = frozenset({Actor.HANDLER, Actor.STAFF, Actor.SERVICE})
_STAFF = frozenset({Actor.STAFF, Actor.SERVICE})
# The one declaration of who may take each action.
MAY: dict[Action, frozenset[Actor]] = {
    _A.ACCEPT: _HANDS,
    _A.START: _HANDS,
    _A.RESOLVE: _HANDS,
    _A.HAND_BACK: _HANDS,
    _A.DISPATCH: _STAFF,
    _A.REASSIGN: _STAFF,
    _A.REJECT: _STAFF,
    _A.MARK_DUPLICATE: _STAFF,
    _A.CLOSE: _STAFF,
    _A.REVIVE: _STAFF,
    _A.REOPEN: _STAFF | {Actor.REPORTER},
    _A.WITHDRAW: frozenset({Actor.REPORTER}),
    _A.EVALUATE: frozenset({Actor.REPORTER}),
    _A.COMMENT: _HANDS | {Actor.REPORTER},
    _A.AMEND: _STAFF,
}


def actors(principal: Principal, event: Event) -> frozenset[Actor]:
    """Every relation the caller has to the event."""
    found: set[Actor] = set()
    if principal.is_anonymous:
        return frozenset()
    if principal.kind == "service":
        found.add(Actor.SERVICE)
    if principal.subject == event.reporter:
        found.add(Actor.REPORTER)
    if principal.has_scope(HANDLE_SCOPE):
        found.add(Actor.HANDLER)
    if principal.has_scope(MANAGE_SCOPE):
        found.add(Actor.STAFF)
    return frozenset(found)


def check(principal: Principal, event: Event, action: Action) -> None:
    """PERMISSION_DENIED naming the action and who may take it."""
    if actors(principal, event) & MAY[action]:
        return
    who = " or ".join(sorted(a.value for a in MAY[action]))
    raise PermissionDenied(
        f"only the event's {who} may {action.value.replace('_', ' ')} it",
        reason="ACTION_NOT_ALLOWED",
        metadata={"action": action.value, "allowed": ",".join(sorted(MAY[action]))},
    )


def reads_subtree(principal: Principal) -> bool:
    """Staff, handlers, auditors, apps and services read every event of their subtree;
    anyone else (a resident, a volunteer) reads the events they reported."""
    if principal.is_anonymous:
        return False
    if principal.kind in ("service", "app"):
        return True
    return any(principal.has_scope(s) for s in (HANDLE_SCOPE, MANAGE_SCOPE, AUDIT_SCOPE))


def reads(principal: Principal, reporter: str) -> bool:
    """Whether a (non-anonymous) caller reads an event this reporter reported."""
    return not principal.is_anonymous and (
        reads_subtree(principal) or principal.subject == reporter
    )


def contact_for(principal: Principal, reporter: str, contact: str) -> str:
    """The reporter's contact as this caller may see it: whole for the reporter and
    callers holding the sensitive scope, masked for everyone else (a copy masked
    already, as the outbox carries it, stays as it is)."""
    if not contact or principal.subject == reporter or principal.has_scope(masking.SENSITIVE_SCOPE):
        return contact
    return contact if "*" in contact else masking.mask_contact(contact)


def public_view(event: Event) -> Event:
    """What anyone may read of an event of a public category: no reporter, contact,
    comments, evaluation or actors."""
    return replace(
        event,
        reporter="",
        reporter_contact="",
        comments=(),
        evaluation=None,
        timeline=tuple(
            TimelineEntry("", e.time, e.from_state, e.to_state, "") for e in event.timeline
        ),
    )


def seen_by(principal: Principal, event: Event) -> Event:
    """The event as this caller may read it."""
    if principal.is_anonymous:
        return public_view(event)
    contact = contact_for(principal, event.reporter, event.reporter_contact)
    return event if contact == event.reporter_contact else replace(event, reporter_contact=contact)
