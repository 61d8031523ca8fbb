"""Fill once, paid once: a form record naming a household is a fact the points rules pay
for, on both stores of each side, and a retried record pays nothing more."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from services.empower.domain.forms import FormsDesk
from services.empower.domain.forms_model import FieldType, FormField, FormRecord
from services.empower.domain.points import PointsLedger
from services.empower.domain.points_model import HolderKind, Period
from services.empower.domain.record_facts import RECORDED, record_fact
from services.empower.store.points_sqlite import SqlitePointsStore
from services.kit.principal import Principal
from tests.conftest import XINGMING

STAFF = Principal(
    subject="users/inspector",
    tenant=XINGMING,
    scopes=frozenset({"forms:write", "reports:read", "points:write"}),
)
FIELDS = [
    FormField("household", "Household", FieldType.TEXT, required=True),
    FormField("sorted_ok", "Sorted correctly", FieldType.BOOLEAN, required=True),
]


async def test_a_passed_sorting_check_pays_its_household_once(forms_store: Any, tmp_path: Path):
    ledger = PointsLedger(SqlitePointsStore(tmp_path / "points.sqlite3"))

    async def pay(record: FormRecord) -> None:
        fact = record_fact(record)
        if fact is not None:
            await ledger.apply_fact(fact)

    desk = FormsDesk(forms_store, on_record=pay)
    await desk.create_form(STAFF, XINGMING, "sorting-check", "Sorting check", FIELDS)
    await ledger.create_rule(
        STAFF,
        XINGMING,
        display_name="Waste sorted correctly",
        fact_type=RECORDED,
        match={"form": "sorting-check", "sorted_ok": "true"},
        points=5,
        cap=20,
        cap_period=Period.WEEK,
    )
    passed = {"household": "xm-b12-301", "sorted_ok": "true"}
    for _ in range(2):  # the second is a retry: the same record, paid for once
        await desk.create_record(STAFF, XINGMING, "sorting-check", passed, "C1", "check-1")
    await desk.create_record(
        STAFF,
        XINGMING,
        "sorting-check",
        {"household": "xm-b12-302", "sorted_ok": "false"},
        "C1",
        "check-2",
    )
    accounts, _ = await ledger.list_accounts(STAFF, XINGMING, "", 50, "")
    assert {(a.holder, a.holder_kind, a.balance) for a in accounts} == {
        ("xm-b12-301", HolderKind.HOUSEHOLD, 5)
    }


def test_a_record_without_a_usable_holder_is_no_fact():
    def record(values: dict[str, str]) -> FormRecord:
        return FormRecord("r1", XINGMING, "f", "f", values, "C1", "users/a", "q", None)  # type: ignore[arg-type]

    assert record_fact(record({"sorted_ok": "true"})) is None
    assert record_fact(record({"household": "has spaces"})) is None
    fact = record_fact(record({"person": "users/u1", "sorted_ok": "true"}))
    assert fact is not None and fact.holder_kind is HolderKind.PERSON
    assert dict(fact.attributes) == {
        "person": "users/u1",
        "sorted_ok": "true",
        "form": "f",
        "grid_cell": "C1",
    }
    assert (fact.key, fact.subject) == ("r1", "users/a")
