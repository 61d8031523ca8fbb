"""JSON shapes of the points ledger: accounts, rules, entries and postings.

Amounts are whole points (JSON integers, strictly: `5.0` or `"5"` are refused). The
service checks holders, fact types and bounds (400 naming the field); these shapes
refuse unknown fields and wrong types.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from gateway.schemas.contract import limited
from grassroots.empower.v1 import points_service_pb2 as pb

HolderKindName = Literal["household", "person"]
PeriodName = Literal["day", "week", "month"]
EntryKindName = Literal["rule_credit", "manual_credit", "redemption"]


class PointsAccountCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    holder_kind: HolderKindName
    holder: str = Field(
        ...,
        description="a person's or user's resource name, or a household reference",
    )
    display_name: str = ""


class PointsAccountOut(BaseModel):
    id: str
    name: str
    holder_kind: HolderKindName
    holder: str
    display_name: str
    balance: int
    create_time: datetime


class PointsAccountList(BaseModel):
    points_accounts: list[PointsAccountOut]
    next_page_token: str


class PointsRuleCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    display_name: str = ""
    fact_type: str = Field(..., examples=["task.resolved"])
    match: dict[str, str] = Field(default_factory=dict, examples=[{"task_kind": "volunteer"}])
    points: int = limited(pb.PointsRule, "points")
    cap: int = limited(
        pb.PointsRule, "cap", 0, description="most points per account and period; 0: none"
    )
    cap_period: PeriodName | None = None


class PointsRuleOut(BaseModel):
    id: str
    name: str
    display_name: str
    fact_type: str
    match: dict[str, str]
    points: int
    cap: int
    cap_period: PeriodName | None
    create_time: datetime


class PointsRuleList(BaseModel):
    points_rules: list[PointsRuleOut]


class PointsPosting(BaseModel):
    """A credit by hand or a redemption at the shop; `request_id` makes retries safe."""

    model_config = ConfigDict(extra="forbid", strict=True)

    amount: int = limited(pb.CreditPointsRequest, "amount")
    memo: str = ""
    request_id: str


class LedgerEntryOut(BaseModel):
    id: str
    name: str
    kind: EntryKindName
    amount: int
    balance_after: int
    idempotency_key: str
    rule: str
    memo: str
    actor: str
    create_time: datetime


class LedgerEntryList(BaseModel):
    ledger_entries: list[LedgerEntryOut]
    next_page_token: str
    balance: int
