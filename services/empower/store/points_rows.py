"""The points tables as both stores write them: columns, statements, row mapping.

Statements use `?` placeholders and are rendered per backend by `services.kit.sqldialect`.
Times are microseconds since the epoch; `match` is a JSON object.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from services.empower.domain.people_model import from_us, to_us
from services.empower.domain.points_model import (
    Account,
    Entry,
    EntryKind,
    HolderKind,
    Period,
    Posting,
    Rule,
)
from services.kit.sqldialect import in_subtree as in_subtree

ACCOUNT_COLUMNS = "id, tenant, holder_kind, holder, display_name, balance, create_us"
RULE_COLUMNS = "id, tenant, display_name, fact_type, match_json, points, cap, cap_period, create_us"
ENTRY_COLUMNS = (
    "sequence, tenant, account_id, kind, amount, balance_after, idempotency_key, rule_id, "
    "memo, actor, create_us"
)
_NEW_ENTRY_COLUMNS = ENTRY_COLUMNS.removeprefix("sequence, ")

INSERT_ACCOUNT = (
    f"INSERT INTO points_accounts ({ACCOUNT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (tenant, holder) DO NOTHING"
)
ACCOUNT_OF_HOLDER = f"SELECT {ACCOUNT_COLUMNS} FROM points_accounts WHERE tenant = ? AND holder = ?"
GET_ACCOUNT = f"SELECT {ACCOUNT_COLUMNS} FROM points_accounts WHERE id = ?"
LIST_ACCOUNTS = f"SELECT {ACCOUNT_COLUMNS} FROM points_accounts WHERE "
INSERT_RULE = f"INSERT INTO points_rules ({RULE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
RULES_OF = (
    f"SELECT {RULE_COLUMNS} FROM points_rules WHERE tenant IN ({{marks}}) ORDER BY create_us, id"
)
ENTRY_BY_KEY = f"SELECT {ENTRY_COLUMNS} FROM points_ledger WHERE tenant = ? AND idempotency_key = ?"
EARNED_SINCE = (
    "SELECT COALESCE(SUM(amount), 0) FROM points_ledger "
    "WHERE account_id = ? AND rule_id = ? AND create_us >= ?"
)
INSERT_ENTRY = (
    f"INSERT INTO points_ledger ({_NEW_ENTRY_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
    "RETURNING sequence"
)
MOVE_BALANCE = "UPDATE points_accounts SET balance = ? WHERE id = ?"
LIST_ENTRIES = f"SELECT {ENTRY_COLUMNS} FROM points_ledger WHERE account_id = ? "
ENTRIES_TOTAL = "SELECT COALESCE(SUM(amount), 0) FROM points_ledger WHERE account_id = ?"
# What village credit scores (ADR 37): credited entries, never redemptions.
CREDITED_SINCE = (
    "SELECT COALESCE(SUM(amount), 0), COUNT(*) FROM points_ledger "
    "WHERE account_id = ? AND amount > 0 AND kind <> 'redemption' AND create_us >= ?"
)

Row = Mapping[str, Any]


def account_values(account: Account) -> tuple[object, ...]:
    return (
        account.id,
        account.tenant,
        account.holder_kind.value,
        account.holder,
        account.display_name,
        account.balance,
        to_us(account.create_time),
    )


def row_to_account(row: Row) -> Account:
    return Account(
        id=row["id"],
        tenant=row["tenant"],
        holder_kind=HolderKind(row["holder_kind"]),
        holder=row["holder"],
        display_name=row["display_name"],
        balance=int(row["balance"]),
        create_time=from_us(row["create_us"]),
    )


def rule_values(rule: Rule) -> tuple[object, ...]:
    return (
        rule.id,
        rule.tenant,
        rule.display_name,
        rule.fact_type,
        json.dumps(dict(rule.match), sort_keys=True, ensure_ascii=False),
        rule.points,
        rule.cap,
        rule.cap_period.value,
        to_us(rule.create_time),
    )


def row_to_rule(row: Row) -> Rule:
    return Rule(
        id=row["id"],
        tenant=row["tenant"],
        display_name=row["display_name"],
        fact_type=row["fact_type"],
        match=json.loads(row["match_json"]),
        points=int(row["points"]),
        cap=int(row["cap"]),
        cap_period=Period(row["cap_period"]),
        create_time=from_us(row["create_us"]),
    )


def new_entry_values(
    posting: Posting, amount: int, balance_after: int, memo: str
) -> tuple[object, ...]:
    return (
        posting.tenant,
        posting.account_id,
        posting.kind.value,
        amount,
        balance_after,
        posting.idempotency_key,
        posting.rule_id,
        memo,
        posting.actor,
        to_us(posting.time),
    )


def entry_of(sequence: int, posting: Posting, amount: int, balance_after: int, memo: str) -> Entry:
    return Entry(
        sequence=sequence,
        tenant=posting.tenant,
        account_id=posting.account_id,
        kind=posting.kind,
        amount=amount,
        balance_after=balance_after,
        idempotency_key=posting.idempotency_key,
        rule_id=posting.rule_id,
        memo=memo,
        actor=posting.actor,
        create_time=posting.time,
    )


def row_to_entry(row: Row) -> Entry:
    return Entry(
        sequence=int(row["sequence"]),
        tenant=row["tenant"],
        account_id=row["account_id"],
        kind=EntryKind(row["kind"]),
        amount=int(row["amount"]),
        balance_after=int(row["balance_after"]),
        idempotency_key=row["idempotency_key"],
        rule_id=row["rule_id"],
        memo=row["memo"],
        actor=row["actor"],
        create_time=from_us(row["create_us"]),
    )


def earned_since(posting: Posting) -> int | None:
    """The cap period's start in microseconds, or None when the posting has no cap."""
    if posting.cap_since is None or posting.cap <= 0:
        return None
    return to_us(posting.cap_since)
