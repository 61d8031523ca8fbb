"""The event lifecycle as data: which move leads from which state to which.

reported -> accepted -> dispatched -> in_progress -> resolved -> closed
with rejected, duplicate and withdrawn from the first steps, and reopened from
resolved, closed or rejected back into the handler's hands. Each legal move has a
name (an `Action`); `services.events.domain.access` says who may take each one.
"""

from __future__ import annotations

from enum import StrEnum

from services.events.domain.model import State
from services.kit.errors import FailedPrecondition


class Action(StrEnum):
    """What a caller does to an event: the moves, and the changes that are not moves."""

    ACCEPT = "accept"
    DISPATCH = "dispatch"
    START = "start"
    HAND_BACK = "hand_back"
    RESOLVE = "resolve"
    REASSIGN = "reassign"
    REJECT = "reject"
    MARK_DUPLICATE = "mark_duplicate"
    WITHDRAW = "withdraw"
    CLOSE = "close"
    REOPEN = "reopen"
    REVIVE = "revive"
    EVALUATE = "evaluate"
    COMMENT = "comment"
    AMEND = "amend"  # correct the category or the place of an open event


_S = State
# The one declaration of the lifecycle: (from, to) -> the action that move is.
MOVES: dict[tuple[State, State], Action] = {
    (_S.REPORTED, _S.ACCEPTED): Action.ACCEPT,
    (_S.REPORTED, _S.REJECTED): Action.REJECT,
    (_S.REPORTED, _S.DUPLICATE): Action.MARK_DUPLICATE,
    (_S.REPORTED, _S.WITHDRAWN): Action.WITHDRAW,
    (_S.ACCEPTED, _S.DISPATCHED): Action.DISPATCH,
    (_S.ACCEPTED, _S.REJECTED): Action.REJECT,
    (_S.ACCEPTED, _S.DUPLICATE): Action.MARK_DUPLICATE,
    (_S.ACCEPTED, _S.WITHDRAWN): Action.WITHDRAW,
    (_S.DISPATCHED, _S.IN_PROGRESS): Action.START,
    (_S.DISPATCHED, _S.ACCEPTED): Action.REASSIGN,
    (_S.DISPATCHED, _S.WITHDRAWN): Action.WITHDRAW,
    (_S.IN_PROGRESS, _S.RESOLVED): Action.RESOLVE,
    (_S.IN_PROGRESS, _S.DISPATCHED): Action.HAND_BACK,
    (_S.RESOLVED, _S.CLOSED): Action.CLOSE,
    (_S.RESOLVED, _S.REOPENED): Action.REOPEN,
    (_S.CLOSED, _S.REOPENED): Action.REOPEN,
    (_S.REOPENED, _S.DISPATCHED): Action.REASSIGN,
    (_S.REOPENED, _S.IN_PROGRESS): Action.START,
    (_S.REOPENED, _S.RESOLVED): Action.RESOLVE,
    (_S.REJECTED, _S.REOPENED): Action.REVIVE,
}
TRANSITIONS: dict[State, frozenset[State]] = {
    state: frozenset(to for (start, to) in MOVES if start is state) for state in State
}
OPEN_STATES = frozenset(
    {State.REPORTED, State.ACCEPTED, State.DISPATCHED, State.IN_PROGRESS, State.REOPENED}
)
# Nothing more will happen to these unless someone reopens them (Open311's "closed").
FINISHED_STATES = frozenset({State.CLOSED, State.REJECTED, State.DUPLICATE, State.WITHDRAWN})


def check_transition(current: State, target: State) -> Action:
    """The action moving from `current` to `target`; FAILED_PRECONDITION naming the
    current state when there is none."""
    action = MOVES.get((current, target))
    if action is None:
        allowed = ", ".join(sorted(s.value for s in TRANSITIONS[current])) or "none"
        raise FailedPrecondition(
            f"cannot move an event from {current.value} to {target.value}; "
            f"from {current.value} it may go to: {allowed}",
            reason="ILLEGAL_TRANSITION",
            metadata={"current_state": current.value, "requested_state": target.value},
        )
    return action
