"""gRPC adapter of the points ledger: messages in, domain calls, messages out.

Balances, caps, idempotency and tenancy are decided in `services.empower.domain.points`.
"""

from __future__ import annotations

from google.protobuf import empty_pb2

from grassroots.empower.v1 import points_service_pb2 as pb
from grassroots.empower.v1 import points_service_pb2_grpc as pb_grpc
from services.empower.domain.points import PointsLedger
from services.empower.domain.points_model import (
    Account,
    Entry,
    EntryKind,
    HolderKind,
    Period,
    Rule,
    parse_account_name,
)
from services.kit import tenancy
from services.kit.context import require_principal
from services.kit.errors import InvalidArgument
from services.kit.timestamps import to_timestamp

_HOLDERS = {
    HolderKind.HOUSEHOLD: pb.PointsAccount.HOLDER_KIND_HOUSEHOLD,
    HolderKind.PERSON: pb.PointsAccount.HOLDER_KIND_PERSON,
}
_HOLDERS_BACK = {v: k for k, v in _HOLDERS.items()}
_PERIODS = {
    Period.NONE: pb.PointsRule.PERIOD_UNSPECIFIED,
    Period.DAY: pb.PointsRule.PERIOD_DAY,
    Period.WEEK: pb.PointsRule.PERIOD_WEEK,
    Period.MONTH: pb.PointsRule.PERIOD_MONTH,
}
_PERIODS_BACK = {v: k for k, v in _PERIODS.items()}
_KINDS = {
    EntryKind.RULE_CREDIT: pb.LedgerEntry.KIND_RULE_CREDIT,
    EntryKind.MANUAL_CREDIT: pb.LedgerEntry.KIND_MANUAL_CREDIT,
    EntryKind.REDEMPTION: pb.LedgerEntry.KIND_REDEMPTION,
}


def account_to_proto(account: Account) -> pb.PointsAccount:
    return pb.PointsAccount(
        name=account.resource_name,
        holder_kind=_HOLDERS[account.holder_kind],
        holder=account.holder,
        display_name=account.display_name,
        balance=account.balance,
        create_time=to_timestamp(account.create_time),
    )


def rule_to_proto(rule: Rule) -> pb.PointsRule:
    return pb.PointsRule(
        name=rule.resource_name,
        display_name=rule.display_name,
        fact_type=rule.fact_type,
        match=dict(rule.match),
        points=rule.points,
        cap=rule.cap,
        cap_period=_PERIODS[rule.cap_period],
        create_time=to_timestamp(rule.create_time),
    )


def entry_to_proto(entry: Entry) -> pb.LedgerEntry:
    rule = (
        f"{tenancy.tenant_name(entry.tenant)}/pointsRules/{entry.rule_id}" if entry.rule_id else ""
    )
    return pb.LedgerEntry(
        name=entry.resource_name,
        kind=_KINDS[entry.kind],
        amount=entry.amount,
        balance_after=entry.balance_after,
        idempotency_key=entry.idempotency_key,
        rule=rule,
        memo=entry.memo,
        actor=entry.actor,
        create_time=to_timestamp(entry.create_time),
    )


class PointsServicer(pb_grpc.PointsServiceServicer):
    def __init__(self, ledger: PointsLedger) -> None:
        self.ledger = ledger

    async def CreatePointsAccount(
        self, request: pb.CreatePointsAccountRequest, context: object
    ) -> pb.PointsAccount:
        given = request.points_account
        kind = _HOLDERS_BACK.get(given.holder_kind)
        if kind is None:
            raise InvalidArgument.field(
                "points_account.holder_kind", "must be HOLDER_KIND_HOUSEHOLD or HOLDER_KIND_PERSON"
            )
        account = await self.ledger.open_account(
            require_principal(),
            tenancy.parse_parent(request.parent),
            kind,
            given.holder,
            given.display_name,
        )
        return account_to_proto(account)

    async def GetPointsAccount(
        self, request: pb.GetPointsAccountRequest, context: object
    ) -> pb.PointsAccount:
        tenant, account_id = parse_account_name(request.name)
        return account_to_proto(
            await self.ledger.get_account(require_principal(), tenant, account_id)
        )

    async def ListPointsAccounts(
        self, request: pb.ListPointsAccountsRequest, context: object
    ) -> pb.ListPointsAccountsResponse:
        accounts, token = await self.ledger.list_accounts(
            require_principal(),
            tenancy.parse_parent(request.parent),
            request.filter,
            request.page_size,
            request.page_token,
        )
        return pb.ListPointsAccountsResponse(
            points_accounts=[account_to_proto(a) for a in accounts], next_page_token=token
        )

    async def CreatePointsRule(
        self, request: pb.CreatePointsRuleRequest, context: object
    ) -> pb.PointsRule:
        given = request.points_rule
        period = _PERIODS_BACK.get(given.cap_period)
        if period is None:
            raise InvalidArgument.field("points_rule.cap_period", "is not a known period")
        rule = await self.ledger.create_rule(
            require_principal(),
            tenancy.parse_parent(request.parent),
            display_name=given.display_name,
            fact_type=given.fact_type,
            match=dict(given.match),
            points=given.points,
            cap=given.cap,
            cap_period=period,
        )
        return rule_to_proto(rule)

    async def ListPointsRules(
        self, request: pb.ListPointsRulesRequest, context: object
    ) -> pb.ListPointsRulesResponse:
        rules = await self.ledger.list_rules(
            require_principal(), tenancy.parse_parent(request.parent)
        )
        return pb.ListPointsRulesResponse(points_rules=[rule_to_proto(r) for r in rules])

    async def DeletePointsRule(
        self, request: pb.DeletePointsRuleRequest, context: object
    ) -> empty_pb2.Empty:
        tenant, rule_id = tenancy.parse_child_name(request.name, "pointsRules")
        if tenant is None:
            raise InvalidArgument.field("name", "names one tenant's rule, not the wildcard '-'")
        await self.ledger.delete_rule(require_principal(), tenant, rule_id)
        return empty_pb2.Empty()

    async def CreditPoints(
        self, request: pb.CreditPointsRequest, context: object
    ) -> pb.LedgerEntry:
        tenant, account_id = parse_account_name(request.account, "account")
        posted = await self.ledger.credit(
            require_principal(),
            tenant,
            account_id,
            request.amount,
            request.memo,
            request.request_id,
        )
        return entry_to_proto(posted.entry)

    async def RedeemPoints(
        self, request: pb.RedeemPointsRequest, context: object
    ) -> pb.LedgerEntry:
        tenant, account_id = parse_account_name(request.account, "account")
        posted = await self.ledger.redeem(
            require_principal(),
            tenant,
            account_id,
            request.amount,
            request.memo,
            request.request_id,
        )
        return entry_to_proto(posted.entry)

    async def ListLedgerEntries(
        self, request: pb.ListLedgerEntriesRequest, context: object
    ) -> pb.ListLedgerEntriesResponse:
        tenant, account_id = parse_account_name(request.parent, "parent")
        account, entries, token = await self.ledger.statement(
            require_principal(), tenant, account_id, request.page_size, request.page_token
        )
        return pb.ListLedgerEntriesResponse(
            ledger_entries=[entry_to_proto(e) for e in entries],
            next_page_token=token,
            balance=account.balance,
        )
