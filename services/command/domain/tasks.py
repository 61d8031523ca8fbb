"""The task lifecycle as data: which move leads from which state, and who may take it.

    waiting -> offered -> accepted -> in_progress -> done
                  ^  |  (decline / offer runs out: next candidate, or waiting)
                  +--+
A transfer hands an open task to someone else (offered again) or back to routing. A
task whose event is withdrawn, rejected or marked a duplicate is cancelled.
Each task state says which state the event should be in (`EVENT_STATE`); the events
service is moved there through its API (services/command/event_sync.py).
"""

from __future__ import annotations

from enum import StrEnum

from services.command.domain.model import Task, TaskState
from services.kit.errors import FailedPrecondition, PermissionDenied
from services.kit.principal import Principal

WRITE_SCOPE = "command:write"
DISPATCH_SCOPE = "command:dispatch"


class Move(StrEnum):
    ACCEPT = "accept"
    DECLINE = "decline"
    START = "start"
    RESOLVE = "resolve"
    TRANSFER = "transfer"


_S = TaskState
# The one declaration of the lifecycle: (move, from) -> to.
MOVES: dict[tuple[Move, TaskState], TaskState] = {
    (Move.ACCEPT, _S.OFFERED): _S.ACCEPTED,
    (Move.DECLINE, _S.OFFERED): _S.OFFERED,  # to the next candidate (or waiting)
    (Move.START, _S.ACCEPTED): _S.IN_PROGRESS,
    (Move.RESOLVE, _S.ACCEPTED): _S.DONE,
    (Move.RESOLVE, _S.IN_PROGRESS): _S.DONE,
    (Move.TRANSFER, _S.WAITING): _S.OFFERED,
    (Move.TRANSFER, _S.OFFERED): _S.OFFERED,
    (Move.TRANSFER, _S.ACCEPTED): _S.OFFERED,
    (Move.TRANSFER, _S.IN_PROGRESS): _S.OFFERED,
}


class Actor(StrEnum):
    HANDLER = "handler"  # the task is offered to or held by the caller
    DESK = "desk"  # command:write: a village, town or district desk
    SERVICE = "service"  # a component of the platform


# Who may take each move.
MAY: dict[Move, frozenset[Actor]] = {
    Move.ACCEPT: frozenset({Actor.HANDLER}),
    Move.DECLINE: frozenset({Actor.HANDLER}),
    Move.START: frozenset({Actor.HANDLER}),
    Move.RESOLVE: frozenset({Actor.HANDLER}),
    Move.TRANSFER: frozenset({Actor.HANDLER, Actor.DESK, Actor.SERVICE}),
}

# The event state each task state stands for (None: leave the event as it is).
EVENT_STATE: dict[TaskState, str | None] = {
    _S.WAITING: "accepted",
    _S.OFFERED: "accepted",
    _S.ACCEPTED: "dispatched",
    _S.IN_PROGRESS: "in_progress",
    _S.DONE: "resolved",
    _S.CANCELLED: None,
}


def actors(principal: Principal, task: Task) -> frozenset[Actor]:
    found: set[Actor] = set()
    if principal.kind == "service":
        found.add(Actor.SERVICE)
    if task.handler and principal.subject == task.handler:
        found.add(Actor.HANDLER)
    if principal.has_scope(WRITE_SCOPE):
        found.add(Actor.DESK)
    return frozenset(found)


def check(principal: Principal, task: Task, move: Move) -> TaskState:
    """The state the move leads to; FAILED_PRECONDITION naming the current state when
    the move does not apply, PERMISSION_DENIED when the caller may not take it."""
    target = MOVES.get((move, task.state))
    if target is None:
        allowed = sorted(m.value for (m, s) in MOVES if s is task.state)
        raise FailedPrecondition(
            f"cannot {move.value} a task that is {task.state.published}"
            + (f"; it may be: {', '.join(allowed)}" if allowed else ""),
            reason="ILLEGAL_TASK_MOVE",
            metadata={"current_state": task.state.published, "move": move.value},
        )
    if not actors(principal, task) & MAY[move]:
        who = " or ".join(sorted(a.value for a in MAY[move]))
        raise PermissionDenied(
            f"only the task's {who} may {move.value} it",
            reason="TASK_MOVE_NOT_ALLOWED",
            metadata={"move": move.value},
        )
    return target
