"""Latest values in this process's memory: the embedded backend's latest state.

Filled at start from the history in the store (the newest reading of each series), so
a restart loses nothing that was acknowledged.
"""

from __future__ import annotations

from services.twin.domain.entities import Latest


class MemoryLatest:
    def __init__(self, initial: dict[int, Latest] | None = None) -> None:
        self._values: dict[int, Latest] = dict(initial or {})

    async def get_many(self, series_ids: list[int]) -> list[Latest | None]:
        get = self._values.get
        return [get(sid) for sid in series_ids]

    async def put_newer(self, items: dict[int, Latest]) -> None:
        values = self._values
        for sid, latest in items.items():
            old = values.get(sid)
            if old is None or latest.observed_ms >= old.observed_ms:
                values[sid] = latest

    async def close(self) -> None:
        return None
