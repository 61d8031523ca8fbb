"""Who sees which dispatch data: every task and profile, or only one's own.

Scopes say what kind of call a caller may make (`command:read`); this module says which
tasks and handler profiles it returns, as services/events/domain/access.py does for
events. Tasks name the event, its category and place, and profiles carry names and live
positions: that is the dispatchers' view. A handler who only holds `command:read` and
`command:dispatch` (grid workers, volunteers, carers) sees the tasks offered to or held
by them and their own profile; the board, with everyone's workload, is the dispatchers'.
"""

from __future__ import annotations

from services.kit.errors import PermissionDenied
from services.kit.principal import Principal

# Staff who configure and assign (command:write), and auditors who read everything below
# them (audit:read), see every task and profile of their subtree.
DISPATCHER_SCOPES = frozenset({"command:write", "audit:read"})


def sees_all(principal: Principal) -> bool:
    """Dispatchers, auditors, the platform's services and app keys (an app's scopes are
    granted to it for the integration it runs) see every task and profile they reach."""
    if principal.kind in ("service", "app"):
        return True
    return any(principal.has_scope(scope) for scope in DISPATCHER_SCOPES)


def require_dispatcher(principal: Principal, what: str) -> None:
    if not sees_all(principal):
        raise PermissionDenied(
            f"only dispatchers (command:write) may read {what}", reason="DISPATCHERS_ONLY"
        )
