"""The ledger's promises: exact balances, one credit per key, caps, no overdraw, tenancy."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from services.empower.domain.points import PointsLedger, period_start
from services.empower.domain.points_model import EntryKind, Fact, HolderKind, Period
from services.kit.errors import FailedPrecondition, InvalidArgument, NotFound
from services.kit.tenancy import ALL_TENANTS
from tests.conftest import TOWN, XIANGYANG, XINGMING
from tests.unit.empower.points.conftest import clerk

STAFF = clerk(XINGMING, "points:write", "empower:read")


def fact(key: str, holder: str = "users/volunteer-li", **attributes: str) -> Fact:
    return Fact(
        type="task.resolved",
        key=key,
        tenant=XINGMING,
        holder=holder,
        attributes={"task_kind": "volunteer", **attributes},
    )


async def test_rule_pays_a_fact_once_however_often_it_arrives(ledger: PointsLedger) -> None:
    await ledger.create_rule(
        STAFF,
        XINGMING,
        display_name="Volunteer task",
        fact_type="task.resolved",
        match={"task_kind": "volunteer"},
        points=5,
    )
    first = await ledger.apply_fact(fact("tasks/t1:7"))
    again = await ledger.apply_fact(fact("tasks/t1:7"))
    assert [p.created for p in first] == [True]
    assert [p.created for p in again] == [False]
    assert again[0].entry.sequence == first[0].entry.sequence
    account = await ledger.get_account(STAFF, XINGMING, first[0].entry.account_id)
    assert account.balance == 5
    assert account.holder == "users/volunteer-li"
    assert await ledger.store.entries_total(ALL_TENANTS, account.id) == 5


async def test_a_fact_without_the_rules_attributes_pays_nothing(ledger: PointsLedger) -> None:
    await ledger.create_rule(
        STAFF,
        XINGMING,
        display_name="Volunteer task",
        fact_type="task.resolved",
        match={"task_kind": "volunteer"},
        points=5,
    )
    other = Fact(
        type="task.resolved",
        key="k",
        tenant=XINGMING,
        holder="users/x",
        attributes={"task_kind": "inspection"},
    )
    assert await ledger.apply_fact(other) == []
    wrong_type = Fact(
        type="patrol.completed",
        key="k2",
        tenant=XINGMING,
        holder="users/x",
        attributes={"task_kind": "volunteer"},
    )
    assert await ledger.apply_fact(wrong_type) == []


async def test_a_town_rule_applies_in_its_villages_but_not_elsewhere(ledger: PointsLedger) -> None:
    town = clerk(TOWN, "points:write")
    await ledger.create_rule(
        town, TOWN, display_name="Patrol", fact_type="patrol.completed", match={}, points=2
    )
    village_rule = await ledger.create_rule(
        clerk(XIANGYANG, "points:write"),
        XIANGYANG,
        display_name="Sorting",
        fact_type="patrol.completed",
        match={},
        points=100,
    )
    posted = await ledger.apply_fact(
        Fact(type="patrol.completed", key="p1", tenant=XINGMING, holder="users/gw")
    )
    assert [p.entry.amount for p in posted] == [2]
    assert village_rule.id not in {p.entry.rule_id for p in posted}


async def test_cap_per_period_clips_and_then_records_zero(ledger: PointsLedger) -> None:
    await ledger.create_rule(
        STAFF,
        XINGMING,
        display_name="Sorting check",
        fact_type="sorting.check_passed",
        match={},
        points=3,
        cap=7,
        cap_period=Period.DAY,
    )

    def check(n: int) -> Fact:
        return Fact(
            type="sorting.check_passed",
            key=f"s{n}",
            tenant=XINGMING,
            holder="household/12-301",
            holder_kind=HolderKind.HOUSEHOLD,
        )

    amounts = [(await ledger.apply_fact(check(n)))[0].entry.amount for n in range(4)]
    assert amounts == [3, 3, 1, 0]
    account_id = (await ledger.apply_fact(check(0)))[0].entry.account_id
    account = await ledger.get_account(STAFF, XINGMING, account_id)
    assert account.balance == 7
    assert account.holder_kind is HolderKind.HOUSEHOLD
    _, entries, _ = await ledger.statement(STAFF, XINGMING, account_id, 10, "")
    assert "capped" in entries[0].memo and entries[0].amount == 0


def test_periods_start_at_china_midnight_monday_and_the_first() -> None:
    # 2026-12-02 17:00 UTC is Thursday 2026-12-03 01:00 in China.
    moment = datetime(2026, 12, 2, 17, 0, tzinfo=UTC)
    assert period_start(Period.DAY, moment) == datetime(2026, 12, 2, 16, 0, tzinfo=UTC)
    assert period_start(Period.WEEK, moment) == datetime(2026, 11, 29, 16, 0, tzinfo=UTC)
    assert period_start(Period.MONTH, moment) == datetime(2026, 11, 30, 16, 0, tzinfo=UTC)
    assert period_start(Period.NONE, moment) is None


async def test_redemption_never_exceeds_the_balance(ledger: PointsLedger) -> None:
    account = await ledger.open_account(STAFF, XINGMING, HolderKind.HOUSEHOLD, "household/7-101")
    await ledger.credit(STAFF, XINGMING, account.id, 30, "Cleaned the river bank", "award-1")
    with pytest.raises(InvalidArgument) as refused:
        await ledger.redeem(STAFF, XINGMING, account.id, 31, "Village shop: rice", "buy-1")
    assert refused.value.violations[0].field == "amount"
    assert "balance of 30" in refused.value.violations[0].description
    bought = await ledger.redeem(STAFF, XINGMING, account.id, 25, "Village shop: rice", "buy-2")
    assert bought.entry.amount == -25 and bought.entry.balance_after == 5
    assert bought.entry.kind is EntryKind.REDEMPTION
    repeat = await ledger.redeem(STAFF, XINGMING, account.id, 25, "Village shop: rice", "buy-2")
    assert not repeat.created
    assert (await ledger.get_account(STAFF, XINGMING, account.id)).balance == 5
    _, entries, _ = await ledger.statement(STAFF, XINGMING, account.id, 10, "")
    assert [e.amount for e in entries] == [-25, 30]


async def test_a_request_id_reused_for_another_posting_is_refused(ledger: PointsLedger) -> None:
    account = await ledger.open_account(STAFF, XINGMING, HolderKind.PERSON, "users/a")
    await ledger.credit(STAFF, XINGMING, account.id, 10, "", "same-key")
    with pytest.raises(FailedPrecondition):
        await ledger.redeem(STAFF, XINGMING, account.id, 1, "", "same-key")


async def test_a_request_id_replayed_with_another_amount_or_memo_is_refused(
    ledger: PointsLedger,
) -> None:
    """Answering the first entry would tell the shop a sale of 1 went through as 15."""
    account = await ledger.open_account(STAFF, XINGMING, HolderKind.PERSON, "users/a")
    await ledger.credit(STAFF, XINGMING, account.id, 20, "River bank", "award-1")
    await ledger.redeem(STAFF, XINGMING, account.id, 15, "Rice", "shop-1")
    for retry in (
        ledger.credit(STAFF, XINGMING, account.id, 5, "River bank", "award-1"),
        ledger.credit(STAFF, XINGMING, account.id, 20, "Road", "award-1"),
        ledger.redeem(STAFF, XINGMING, account.id, 1, "Rice", "shop-1"),
    ):
        with pytest.raises(FailedPrecondition) as refused:
            await retry
        assert refused.value.reason == "REQUEST_ID_REUSED"
    same = await ledger.redeem(STAFF, XINGMING, account.id, 15, "Rice", "shop-1")
    assert not same.created
    assert (await ledger.get_account(STAFF, XINGMING, account.id)).balance == 5


async def test_concurrent_credits_with_duplicates_leave_exact_balances(
    ledger: PointsLedger,
) -> None:
    await ledger.create_rule(
        STAFF, XINGMING, display_name="Task", fact_type="task.resolved", match={}, points=1
    )
    holders = [f"users/v{n}" for n in range(5)]
    facts = [fact(f"k{n}", holders[n % 5]) for n in range(200)]
    facts += facts[:20]  # duplicates, delivered again at the same time
    results = await asyncio.gather(*(ledger.apply_fact(f) for f in facts))
    assert sum(1 for r in results if r[0].created) == 200
    for holder in holders:
        accounts, _ = await ledger.list_accounts(STAFF, XINGMING, f'holder = "{holder}"', 10, "")
        assert len(accounts) == 1
        assert accounts[0].balance == 40
        assert await ledger.store.entries_total(ALL_TENANTS, accounts[0].id) == 40


async def test_another_village_sees_no_account_and_cannot_post(ledger: PointsLedger) -> None:
    account = await ledger.open_account(STAFF, XINGMING, HolderKind.PERSON, "users/a")
    neighbour = clerk(XIANGYANG, "points:write", "empower:read")
    with pytest.raises(NotFound):
        await ledger.get_account(neighbour, XINGMING, account.id)
    with pytest.raises(NotFound):
        await ledger.get_account(neighbour, XIANGYANG, account.id)
    with pytest.raises(NotFound):
        await ledger.credit(neighbour, XIANGYANG, account.id, 5, "", "r1")
    accounts, _ = await ledger.list_accounts(neighbour, XIANGYANG, "", 50, "")
    assert accounts == []
    town_view, _ = await ledger.list_accounts(clerk(TOWN, "empower:read"), TOWN, "", 50, "")
    assert [a.id for a in town_view] == [account.id]


async def test_bad_input_names_the_field(ledger: PointsLedger) -> None:
    with pytest.raises(InvalidArgument) as bad:
        await ledger.create_rule(
            STAFF, XINGMING, display_name="x", fact_type="resolved", match={}, points=1
        )
    assert bad.value.violations[0].field == "points_rule.fact_type"
    with pytest.raises(InvalidArgument) as bad:
        await ledger.create_rule(
            STAFF, XINGMING, display_name="x", fact_type="task.resolved", match={}, points=0
        )
    assert bad.value.violations[0].field == "points_rule.points"
    with pytest.raises(InvalidArgument) as bad:
        await ledger.create_rule(
            STAFF, XINGMING, display_name="x", fact_type="task.resolved", match={}, points=1, cap=5
        )
    assert bad.value.violations[0].field == "points_rule.cap_period"
    account = await ledger.open_account(STAFF, XINGMING, HolderKind.PERSON, "users/a")
    with pytest.raises(InvalidArgument) as bad:
        await ledger.credit(STAFF, XINGMING, account.id, -3, "", "r")
    assert bad.value.violations[0].field == "amount"
    with pytest.raises(InvalidArgument) as bad:
        await ledger.credit(STAFF, XINGMING, account.id, 3, "", "")
    assert bad.value.violations[0].field == "request_id"


async def test_statement_pages_newest_first(ledger: PointsLedger) -> None:
    account = await ledger.open_account(STAFF, XINGMING, HolderKind.PERSON, "users/a")
    for n in range(5):
        await ledger.credit(STAFF, XINGMING, account.id, n + 1, f"award {n}", f"r{n}")
    _, first, token = await ledger.statement(STAFF, XINGMING, account.id, 3, "")
    _, second, last = await ledger.statement(STAFF, XINGMING, account.id, 3, token)
    assert [e.amount for e in first + second] == [5, 4, 3, 2, 1]
    assert last == ""
    assert first[0].balance_after == 15


async def test_a_deleted_rule_pays_nothing_more_and_its_entries_stay(ledger: PointsLedger) -> None:
    rule = await ledger.create_rule(
        STAFF,
        XINGMING,
        display_name="Volunteer task",
        fact_type="task.resolved",
        match={"task_kind": "volunteer"},
        points=5,
    )
    paid = await ledger.apply_fact(fact("tasks/t9:1"))
    with pytest.raises(NotFound):
        await ledger.delete_rule(clerk(XIANGYANG, "points:write"), XINGMING, rule.id)

    await ledger.delete_rule(STAFF, XINGMING, rule.id)

    assert await ledger.list_rules(STAFF, XINGMING) == []
    assert await ledger.apply_fact(fact("tasks/t9:2")) == []
    account = await ledger.get_account(STAFF, XINGMING, paid[0].entry.account_id)
    assert account.balance == 5
    with pytest.raises(NotFound):
        await ledger.delete_rule(STAFF, XINGMING, rule.id)


async def test_a_cap_below_the_rules_points_is_refused_naming_cap(ledger: PointsLedger) -> None:
    with pytest.raises(InvalidArgument) as refused:
        await ledger.create_rule(
            STAFF,
            XINGMING,
            display_name="Never paid in full",
            fact_type="task.resolved",
            match={},
            points=10,
            cap=5,
            cap_period=Period.WEEK,
        )
    assert refused.value.violations[0].field == "points_rule.cap"
    assert "below" in refused.value.violations[0].description
    equal = await ledger.create_rule(
        STAFF,
        XINGMING,
        display_name="One fact a week",
        fact_type="task.resolved",
        match={},
        points=10,
        cap=10,
        cap_period=Period.WEEK,
    )
    assert equal.cap == 10
