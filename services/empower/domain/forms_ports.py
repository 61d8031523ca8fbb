"""What fill-once forms and reports need from storage.

`subtree` is the tenant subtree a unit of work is limited to (ALL_TENANTS for the
scheduler and for finding inherited forms); stores filter by it and PostgreSQL
repeats the filter with row-level security.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from datetime import datetime
from typing import Protocol

from services.empower.domain.forms_model import Form, FormRecord, ReportRun, ReportTemplate
from services.empower.domain.report_sources import EventFact, TaskFact


class FormsStore(Protocol):
    async def insert_form(self, subtree: str, form: Form) -> None:
        """ALREADY_EXISTS when the tenant has a form with this id."""
        ...

    async def forms_at(self, subtree: str, tenants: Sequence[str], form_id: str = "") -> list[Form]:
        """Forms defined at these tenants (with this id, when given)."""
        ...

    async def insert_record(self, subtree: str, record: FormRecord) -> FormRecord:
        """Store the record, or return the one stored with its tenant and request_id."""
        ...

    async def list_records(
        self,
        subtree: str,
        form: str,
        limit: int,
        after_id: str | None,
        equals: Mapping[str, str] | None = None,
    ) -> list[FormRecord]:
        """Records of the form (by resource name) in the subtree, by id; with `equals`,
        only those whose values equal these (GRID_CELL_FILTER: the record's cell)."""
        ...

    async def insert_template(self, subtree: str, template: ReportTemplate) -> None:
        """ALREADY_EXISTS when the tenant has a template with this id."""
        ...

    async def templates_at(
        self, subtree: str, tenants: Sequence[str], template_id: str = ""
    ) -> list[ReportTemplate]: ...

    async def scheduled_templates(self) -> list[tuple[ReportTemplate, datetime | None]]:
        """Every template with a schedule, and when the schedule last ran it."""
        ...

    async def insert_run(self, subtree: str, run: ReportRun) -> None: ...

    async def get_run(
        self, subtree: str, tenant: str, template_id: str, run_id: str
    ) -> ReportRun | None: ...

    async def list_runs(
        self, subtree: str, tenant: str, template_id: str, limit: int
    ) -> list[ReportRun]:
        """Newest first."""
        ...


class Places(Protocol):
    async def outside(
        self, village: str, grid_cells: Collection[str], buildings: Collection[str]
    ) -> tuple[set[str], set[str]]:
        """The grid cells and buildings among these that are not the village's own (map)."""
        ...


class LoopActivity(Protocol):
    """The events and tasks of a subtree, read from their own services in pages."""

    async def events(self, subtree: str, since: datetime | None) -> list[EventFact]:
        """Events of the subtree created at or after `since` (all when None)."""
        ...

    async def tasks(self, subtree: str, since: datetime | None) -> list[TaskFact]:
        """Tasks of the subtree created at or after `since` (all when None)."""
        ...
