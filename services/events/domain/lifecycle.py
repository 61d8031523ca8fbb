"""The event lifecycle as data: which state may follow which.

reported -> accepted -> dispatched -> in_progress -> resolved -> closed
with rejected and duplicate from the first steps, and reopened from resolved or
closed back into the handler's hands.
"""

from __future__ import annotations

from services.events.domain.model import State
from services.kit.errors import FailedPrecondition

TRANSITIONS: dict[State, frozenset[State]] = {
    State.REPORTED: frozenset({State.ACCEPTED, State.REJECTED, State.DUPLICATE}),
    State.ACCEPTED: frozenset({State.DISPATCHED, State.REJECTED, State.DUPLICATE}),
    State.DISPATCHED: frozenset({State.IN_PROGRESS, State.ACCEPTED}),
    State.IN_PROGRESS: frozenset({State.RESOLVED, State.DISPATCHED}),
    State.RESOLVED: frozenset({State.CLOSED, State.REOPENED}),
    State.CLOSED: frozenset({State.REOPENED}),
    State.REOPENED: frozenset({State.DISPATCHED, State.IN_PROGRESS, State.RESOLVED}),
    State.REJECTED: frozenset({State.REOPENED}),
    State.DUPLICATE: frozenset(),
}
OPEN_STATES = frozenset(
    {State.REPORTED, State.ACCEPTED, State.DISPATCHED, State.IN_PROGRESS, State.REOPENED}
)


def check_transition(current: State, target: State) -> None:
    """FAILED_PRECONDITION naming the current state when `target` may not follow it."""
    if target not in TRANSITIONS[current]:
        allowed = ", ".join(sorted(s.value for s in TRANSITIONS[current])) or "none"
        raise FailedPrecondition(
            f"cannot move an event from {current.value} to {target.value}; "
            f"from {current.value} it may go to: {allowed}",
            reason="ILLEGAL_TRANSITION",
            metadata={"current_state": current.value, "requested_state": target.value},
        )
