"""Which moves bring an event to the state its task stands for.

A task's state names the event state it implies (`tasks.EVENT_STATE`). Facts can be
delivered twice or late, so the event is not moved by "the fact says accept" but walked
from where it is now to where the task says it should be: the same call is then right
however often and in whatever order it runs.
"""

from __future__ import annotations

# The handling path of the events lifecycle, in order.
FORWARD = ("reported", "accepted", "dispatched", "in_progress", "resolved")
# Steps back the events lifecycle allows on the way (hand back, reassign).
BACK = {"in_progress": "dispatched", "dispatched": "accepted"}
# A reopened event is handled again: it goes to dispatched or in_progress directly.
REOPENED_NEXT = {"dispatched": "dispatched", "in_progress": "in_progress", "resolved": "resolved"}


def moves(current: str, desired: str) -> list[str]:
    """The states to move through, in order; empty when there is nothing to do (or
    nothing the handling path allows, such as a withdrawn or closed event)."""
    if current == desired:
        return []
    if current == "reopened":
        if desired == "resolved":
            return ["in_progress", "resolved"]
        return [REOPENED_NEXT[desired]] if desired in REOPENED_NEXT else []
    if current not in FORWARD or desired not in FORWARD:
        return []
    here, there = FORWARD.index(current), FORWARD.index(desired)
    if here < there:
        return list(FORWARD[here + 1 : there + 1])
    steps: list[str] = []
    state = current
    while state != desired and state in BACK:
        state = BACK[state]
        steps.append(state)
    return steps if state == desired else []
