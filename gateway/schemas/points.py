"""JSON shapes of the points ledger: accounts, rules, entries and postings.

Amounts are whole points (JSON integers, strictly: `5.0` or `"5"` are refused). The
service checks holders, fact types and bounds; these shapes bound sizes and refuse
unknown fields.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

HolderKindName = Literal["household", "person"]
PeriodName = Literal["day", "week", "month"]
EntryKindName = Literal["rule_credit", "manual_credit", "redemption"]
RequestId = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.:-]+$")]


class PointsAccountCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    holder_kind: HolderKindName
    holder: str = Field(
        ...,
        min_length=1,
        max_length=200,
        description="a person's or user's resource name, or a household reference",
    )
    display_name: str = Field("", max_length=100)


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

    display_name: str = Field("", max_length=100)
    fact_type: str = Field(..., min_length=3, max_length=80, examples=["task.resolved"])
    match: dict[Annotated[str, Field(max_length=40)], Annotated[str, Field(max_length=100)]] = (
        Field(default_factory=dict, max_length=8, examples=[{"task_kind": "volunteer"}])
    )
    points: int = Field(..., ge=1, le=1_000_000)
    cap: int = Field(
        0, ge=0, le=1_000_000_000, description="most points per account and period; 0: none"
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

    amount: int = Field(..., ge=1, le=1_000_000)
    memo: str = Field("", max_length=200)
    request_id: RequestId


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
