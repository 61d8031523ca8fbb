"""The facts the events service publishes on the bus, one type per kind of change.

Each change names its fact where it is made, so a store never guesses it from the
shape of the change (a reassignment is not a state change).
"""

from __future__ import annotations

REPORTED = "event.reported"
STATE_CHANGED = "event.state_changed"
COMMENTED = "event.commented"
# An event's category or place changed (UpdateEvent): dispatch routes it again.
RECATEGORIZED = "event.recategorized"
LOCATED_AGAIN = "event.located_again"
