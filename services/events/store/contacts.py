"""Reporter contacts (phone numbers) are sealed in the events table, never stored in clear.

A copy of the database, its write-ahead log or a backup must not list residents'
phone numbers. The store seals a contact with AES-256-GCM under the events seal keys
(`GRASSROOTS_EVENTS_SEAL_KEYS`) as it writes the row, bound to the event's id, and
opens it as it reads the row; the domain and the API see the number as before, and
show it masked to everyone but the reporter and holders of `people:read_sensitive`.
The outbox and the bus carry the masked copy only (see `services.events.wiring`).
"""

from __future__ import annotations

from functools import lru_cache

from services.kit.sealing import FORMAT_VERSION, Sealer

FIELD = "reporter_contact"


@lru_cache(maxsize=1)
def _process_sealer() -> Sealer:
    """Random keys for this process: for stores built without seal keys (tests only)."""
    return Sealer.generate("process")


class ReporterContacts:
    def __init__(self, sealer: Sealer | None = None) -> None:
        self.sealer = sealer or _process_sealer()

    def seal(self, event_id: str, contact: str) -> str:
        return self.sealer.seal(contact, record=event_id, field=FIELD) if contact else ""

    def open(self, event_id: str, stored: str) -> str:
        if not stored.startswith(f"{FORMAT_VERSION}:"):
            return stored  # empty, or written in clear by an older version
        return self.sealer.open(stored, record=event_id, field=FIELD)
