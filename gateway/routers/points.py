"""REST for the points ledger: accounts, rules, credits, redemptions and statements.

Writes need `points:write`, reads `empower:read`; the service keeps the ledger exact
(one entry per request_id, never past the balance) and answers 404 for another
village's accounts.
"""

from __future__ import annotations

from datetime import UTC
from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, Response, Security

from gateway.auth import access, call_metadata, calls
from gateway.errors import call
from gateway.paths import TenantId, parent, rest_path
from gateway.schemas.identity import RESOURCE_ID_PATTERN
from gateway.schemas.points import (
    LedgerEntryList,
    LedgerEntryOut,
    PointsAccountCreate,
    PointsAccountList,
    PointsAccountOut,
    PointsPosting,
    PointsRuleCreate,
    PointsRuleList,
    PointsRuleOut,
)
from grassroots.empower.v1 import points_service_pb2 as pb
from services.kit.filtering import quote
from services.kit.principal import Principal

SERVICE = "grassroots.empower.v1.PointsService"
router = APIRouter(prefix="/v1/tenants/{tenant}", tags=["points"])
Who = Annotated[Principal, Security(access("empower"))]
AccountId = Annotated[str, Path(pattern=RESOURCE_ID_PATTERN, description="points account id")]
PageSize = Annotated[int, Query(ge=1, le=1000)]
PageToken = Annotated[str, Query(max_length=512)]

_HOLDERS = {
    "household": pb.PointsAccount.HOLDER_KIND_HOUSEHOLD,
    "person": pb.PointsAccount.HOLDER_KIND_PERSON,
}
_HOLDER_NAMES = {v: k for k, v in _HOLDERS.items()}
_PERIODS = {
    "day": pb.PointsRule.PERIOD_DAY,
    "week": pb.PointsRule.PERIOD_WEEK,
    "month": pb.PointsRule.PERIOD_MONTH,
}
_PERIOD_NAMES = {v: k for k, v in _PERIODS.items()}
_KIND_NAMES = {
    pb.LedgerEntry.KIND_RULE_CREDIT: "rule_credit",
    pb.LedgerEntry.KIND_MANUAL_CREDIT: "manual_credit",
    pb.LedgerEntry.KIND_REDEMPTION: "redemption",
}


def account_out(account: pb.PointsAccount) -> PointsAccountOut:
    return PointsAccountOut(
        id=account.name.rsplit("/", 1)[-1],
        name=account.name,
        holder_kind=_HOLDER_NAMES[account.holder_kind],  # type: ignore[arg-type]
        holder=account.holder,
        display_name=account.display_name,
        balance=account.balance,
        create_time=account.create_time.ToDatetime(tzinfo=UTC),
    )


def rule_out(rule: pb.PointsRule) -> PointsRuleOut:
    return PointsRuleOut(
        id=rule.name.rsplit("/", 1)[-1],
        name=rule.name,
        display_name=rule.display_name,
        fact_type=rule.fact_type,
        match=dict(rule.match),
        points=rule.points,
        cap=rule.cap,
        cap_period=_PERIOD_NAMES.get(rule.cap_period),  # type: ignore[arg-type]
        create_time=rule.create_time.ToDatetime(tzinfo=UTC),
    )


def entry_out(entry: pb.LedgerEntry) -> LedgerEntryOut:
    return LedgerEntryOut(
        id=entry.name.rsplit("/", 1)[-1],
        name=entry.name,
        kind=_KIND_NAMES[entry.kind],  # type: ignore[arg-type]
        amount=entry.amount,
        balance_after=entry.balance_after,
        idempotency_key=entry.idempotency_key,
        rule=entry.rule,
        memo=entry.memo,
        actor=entry.actor,
        create_time=entry.create_time.ToDatetime(tzinfo=UTC),
    )


def _account_name(tenant: str, account: str) -> str:
    return f"{parent(tenant)}/pointsAccounts/{account}"


@router.post(
    "/pointsAccounts", status_code=201, response_model=PointsAccountOut, summary="Open an account"
)
@calls(SERVICE, "CreatePointsAccount")
async def create_points_account(
    tenant: TenantId, body: PointsAccountCreate, request: Request, response: Response, who: Who
) -> PointsAccountOut:
    """A household's or person's account; a holder who has one gets it back."""
    created = await call(
        request.app.state.upstreams.points.CreatePointsAccount(
            pb.CreatePointsAccountRequest(
                parent=parent(tenant),
                points_account=pb.PointsAccount(
                    holder_kind=_HOLDERS[body.holder_kind],
                    holder=body.holder,
                    display_name=body.display_name,
                ),
            ),
            metadata=call_metadata(who),
        ),
        strip_prefix="points_account.",
    )
    response.headers["Location"] = rest_path(created.name)
    return account_out(created)


@router.get("/pointsAccounts", response_model=PointsAccountList, summary="List accounts")
@calls(SERVICE, "ListPointsAccounts")
async def list_points_accounts(
    tenant: TenantId,
    request: Request,
    who: Who,
    holder: Annotated[str | None, Query(max_length=200, description="one holder's account")] = None,
    page_size: PageSize = 50,
    page_token: PageToken = "",
) -> PointsAccountList:
    listed = await call(
        request.app.state.upstreams.points.ListPointsAccounts(
            pb.ListPointsAccountsRequest(
                parent=parent(tenant),
                page_size=page_size,
                page_token=page_token,
                filter=f'holder = "{quote(holder)}"' if holder else "",
            ),
            metadata=call_metadata(who),
        )
    )
    return PointsAccountList(
        points_accounts=[account_out(a) for a in listed.points_accounts],
        next_page_token=listed.next_page_token,
    )


@router.get(
    "/pointsAccounts/{points_account}", response_model=PointsAccountOut, summary="Get an account"
)
@calls(SERVICE, "GetPointsAccount")
async def get_points_account(
    tenant: TenantId, points_account: AccountId, request: Request, who: Who
) -> PointsAccountOut:
    found = await call(
        request.app.state.upstreams.points.GetPointsAccount(
            pb.GetPointsAccountRequest(name=_account_name(tenant, points_account)),
            metadata=call_metadata(who),
        )
    )
    return account_out(found)


@router.get(
    "/pointsAccounts/{points_account}/ledgerEntries",
    response_model=LedgerEntryList,
    summary="An account's statement",
)
@calls(SERVICE, "ListLedgerEntries")
async def list_ledger_entries(
    tenant: TenantId,
    points_account: AccountId,
    request: Request,
    who: Who,
    page_size: PageSize = 50,
    page_token: PageToken = "",
) -> LedgerEntryList:
    """Entries newest first, each with the balance it left, and the balance now."""
    listed = await call(
        request.app.state.upstreams.points.ListLedgerEntries(
            pb.ListLedgerEntriesRequest(
                parent=_account_name(tenant, points_account),
                page_size=page_size,
                page_token=page_token,
            ),
            metadata=call_metadata(who),
        )
    )
    return LedgerEntryList(
        ledger_entries=[entry_out(e) for e in listed.ledger_entries],
        next_page_token=listed.next_page_token,
        balance=listed.balance,
    )


@router.post(
    "/pointsAccounts/{points_account}:credit",
    response_model=LedgerEntryOut,
    summary="Award points by hand",
)
@calls(SERVICE, "CreditPoints")
async def credit_points(
    tenant: TenantId, points_account: AccountId, body: PointsPosting, request: Request, who: Who
) -> LedgerEntryOut:
    """One entry per request_id: a retry answers the first entry again."""
    entry = await call(
        request.app.state.upstreams.points.CreditPoints(
            pb.CreditPointsRequest(
                account=_account_name(tenant, points_account),
                amount=body.amount,
                memo=body.memo,
                request_id=body.request_id,
            ),
            metadata=call_metadata(who),
        )
    )
    return entry_out(entry)


@router.post(
    "/pointsAccounts/{points_account}:redeem",
    response_model=LedgerEntryOut,
    summary="Redeem points at the village shop",
)
@calls(SERVICE, "RedeemPoints")
async def redeem_points(
    tenant: TenantId, points_account: AccountId, body: PointsPosting, request: Request, who: Who
) -> LedgerEntryOut:
    """Never more than the balance (400 naming `amount`)."""
    entry = await call(
        request.app.state.upstreams.points.RedeemPoints(
            pb.RedeemPointsRequest(
                account=_account_name(tenant, points_account),
                amount=body.amount,
                memo=body.memo,
                request_id=body.request_id,
            ),
            metadata=call_metadata(who),
        )
    )
    return entry_out(entry)


@router.post("/pointsRules", status_code=201, response_model=PointsRuleOut, summary="Add a rule")
@calls(SERVICE, "CreatePointsRule")
async def create_points_rule(
    tenant: TenantId, body: PointsRuleCreate, request: Request, response: Response, who: Who
) -> PointsRuleOut:
    """Points for a fact type (and attributes), capped per account and period."""
    created = await call(
        request.app.state.upstreams.points.CreatePointsRule(
            pb.CreatePointsRuleRequest(
                parent=parent(tenant),
                points_rule=pb.PointsRule(
                    display_name=body.display_name,
                    fact_type=body.fact_type,
                    match=body.match,
                    points=body.points,
                    cap=body.cap,
                    cap_period=_PERIODS[body.cap_period] if body.cap_period else 0,  # type: ignore[arg-type]
                ),
            ),
            metadata=call_metadata(who),
        ),
        strip_prefix="points_rule.",
    )
    response.headers["Location"] = rest_path(created.name)
    return rule_out(created)


@router.get("/pointsRules", response_model=PointsRuleList, summary="Rules that apply here")
@calls(SERVICE, "ListPointsRules")
async def list_points_rules(tenant: TenantId, request: Request, who: Who) -> PointsRuleList:
    """The node's own rules and those of the nodes above it."""
    listed = await call(
        request.app.state.upstreams.points.ListPointsRules(
            pb.ListPointsRulesRequest(parent=parent(tenant)), metadata=call_metadata(who)
        )
    )
    return PointsRuleList(points_rules=[rule_out(r) for r in listed.points_rules])
