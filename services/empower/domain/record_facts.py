"""A form record as a fact the points rules can pay for ("fill once" feeds the ledger).

A village's checks are form records: a waste-sorting inspector's round, a patrol's
visit. A record of a form with a `household` field (or a `person` field) is a fact of
type `form.recorded` for that holder, keyed by the record, whose attributes are the
form's id, the record's grid cell and its values: a rule matching
`{"form": "sorting-check", "sorted_ok": "true"}` pays for passed checks only, once per
record however often it is told.
"""

from __future__ import annotations

import re

from services.empower.domain.forms_model import FormRecord
from services.empower.domain.points_model import Fact, HolderKind

RECORDED = "form.recorded"
HOLDER_FIELDS = {"household": HolderKind.HOUSEHOLD, "person": HolderKind.PERSON}
_HOLDER = re.compile(r"^[A-Za-z0-9_./:-]{1,200}\Z")


def record_fact(record: FormRecord) -> Fact | None:
    """The fact a record is, or None when it names no holder points could go to."""
    for key, kind in HOLDER_FIELDS.items():
        holder = record.values.get(key, "")
        if holder and _HOLDER.match(holder):
            attributes = {**record.values, "form": record.form_id, "grid_cell": record.grid_cell}
            return Fact(
                type=RECORDED,
                key=record.id,
                tenant=record.tenant,
                holder=holder,
                holder_kind=kind,
                attributes=attributes,
                subject=record.author,
            )
    return None
