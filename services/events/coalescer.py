"""Concurrent single creates ride together: one map call and one commit per group.

Under load, reports that arrive while a group is being stored wait a moment and go
in the next group, so N concurrent creates cost one LocatePoints round trip and one
fsync instead of N. A lone report waits only one event-loop turn. A report whose
group fails (one bad location, a reused key) is retried alone, so one client's bad
input never fails another's report.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict

from services.events.domain.model import Event, NewReport
from services.events.domain.service import EventHub
from services.kit.errors import DomainError
from services.kit.principal import Principal

Pending = tuple[Principal, NewReport, "asyncio.Future[tuple[Event, bool]]"]


class CreateCoalescer:
    def __init__(self, hub: EventHub, max_group: int = 200) -> None:
        self.hub = hub
        self.max_group = max_group
        self._pending: list[Pending] = []
        self._running: asyncio.Task[None] | None = None

    async def report(self, principal: Principal, report: NewReport) -> tuple[Event, bool]:
        future: asyncio.Future[tuple[Event, bool]] = asyncio.get_running_loop().create_future()
        self._pending.append((principal, report, future))
        if self._running is None or self._running.done():
            self._running = asyncio.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        await asyncio.sleep(0)  # let the reports that arrive in this turn join
        while self._pending:
            taken, self._pending = self._pending[: self.max_group], self._pending[self.max_group :]
            groups: dict[tuple[Principal, str], list[Pending]] = defaultdict(list)
            for item in taken:
                groups[(item[0], item[1].parent)].append(item)
            await asyncio.gather(*(self._store(group) for group in groups.values()))

    async def _store(self, group: list[Pending]) -> None:
        principal = group[0][0]
        if len(group) > 1:
            try:
                results = await self.hub.report_many(
                    principal, [report for _, report, _ in group], batch=False
                )
            except DomainError:
                pass  # someone's report is bad: store each alone below
            except BaseException as exc:
                for _, _, future in group:
                    if not future.done():
                        future.set_exception(exc)
                return
            else:
                for (_, _, future), result in zip(group, results, strict=True):
                    if not future.done():
                        future.set_result(result)
                return
        for _, report, future in group:
            try:
                result = await self.hub.report(principal, report)
            except BaseException as exc:
                if not future.done():
                    future.set_exception(exc)
            else:
                if not future.done():
                    future.set_result(result)
