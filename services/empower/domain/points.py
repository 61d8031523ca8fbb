"""The points ledger: good deeds become points, points buy things at the village shop.

Why it is built this way:

* The ledger is append-only and every balance is the sum of its account's entries:
  an entry and the balance it leaves are written in one transaction under the
  account's lock, so they cannot drift apart, and no entry is ever changed.
* Exactly one entry per idempotency key: a fact's key and the rule that paid for it,
  or the caller's request_id. A retried or duplicated fact (delivery on the bus is at
  least once) finds its entry and pays nothing more.
* Caps count what one rule paid one account in the current day, week or month
  (China Standard Time); a fact past the cap is recorded with 0 points and a memo
  saying so, so a statement explains why nothing was paid.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta, timezone

from services.empower.domain.points_model import (
    Account,
    Entry,
    EntryKind,
    Fact,
    HolderKind,
    Period,
    Posted,
    Posting,
    Rule,
)
from services.empower.domain.points_ports import PointsStore
from services.kit import paging, tenancy
from services.kit.errors import FailedPrecondition, InvalidArgument, NotFound
from services.kit.filtering import parse_equalities
from services.kit.ids import new_id
from services.kit.principal import Principal

ACCOUNT_PREFIX = "pa"
RULE_PREFIX = "pr"
MAX_AMOUNT = 1_000_000
MAX_CAP = 1_000_000_000
MAX_MEMO = 200
MAX_MATCH = 8
CHINA_TIME = timezone(timedelta(hours=8))

_HOLDER = re.compile(r"^[A-Za-z0-9_./:-]{1,200}\Z")
_FACT_TYPE = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+\Z")
_ATTRIBUTE = re.compile(r"^[a-z][a-z0-9_]{0,39}\Z")
_REQUEST_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,128}\Z")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def period_start(period: Period, moment: datetime) -> datetime | None:
    """Where the cap's period containing `moment` began, in China Standard Time."""
    local = moment.astimezone(CHINA_TIME)
    midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
    if period is Period.DAY:
        start = midnight
    elif period is Period.WEEK:
        start = midnight - timedelta(days=local.weekday())
    elif period is Period.MONTH:
        start = midnight.replace(day=1)
    else:
        return None
    return start.astimezone(UTC)


def settle(posting: Posting, balance: int, earned: int) -> tuple[int, str]:
    """The amount a posting writes, given the balance and what its rule paid this period."""
    if posting.kind is EntryKind.REDEMPTION:
        if posting.requested > balance:
            raise InvalidArgument.field(
                "amount",
                f"redeeming {posting.requested} points is more than the balance of {balance}",
            )
        return -posting.requested, posting.memo
    if posting.cap_since is not None and posting.cap > 0:
        room = max(posting.cap - earned, 0)
        if room < posting.requested:
            note = f" (capped: {posting.cap} a period, {earned} already paid)"
            return room, (posting.memo + note)[:MAX_MEMO]
    return posting.requested, posting.memo


def _text(value: str, field: str, maximum: int = MAX_MEMO) -> str:
    text = " ".join(value.split())
    if len(text) > maximum or _CONTROL.search(value.replace("\n", " ")):
        raise InvalidArgument.field(field, f"at most {maximum} printable characters")
    return text


def _amount(value: int, field: str = "amount") -> int:
    if not 0 < value <= MAX_AMOUNT:
        raise InvalidArgument.field(field, f"must be a whole number from 1 to {MAX_AMOUNT}")
    return value


def _request_id(value: str) -> str:
    if not _REQUEST_ID.match(value):
        raise InvalidArgument.field(
            "request_id", "required: 1 to 128 letters, digits, '_', '.', ':' or '-'"
        )
    return value


def _same_posting(entry: Entry, posting: Posting) -> bool:
    """Whether a stored entry is what this posting would have written: a retry.

    A caller's award or purchase under a used request_id with another amount or memo is
    not a retry; answering the first entry would tell the shop a sale went through that
    did not. A fact's credit may have been capped, so only its account and kind count.
    """
    if entry.account_id != posting.account_id or entry.kind is not posting.kind:
        return False
    if posting.kind is EntryKind.RULE_CREDIT:
        return True
    return abs(entry.amount) == posting.requested and entry.memo == posting.memo


class PointsLedger:
    """Accounts, rules and postings, checked for tenancy and scope."""

    def __init__(self, store: PointsStore, clock: Callable[[], datetime] | None = None) -> None:
        self.store = store
        self._clock = clock or (lambda: datetime.now(UTC))

    # --- accounts ---------------------------------------------------------------

    async def open_account(
        self,
        caller: Principal,
        tenant: str,
        holder_kind: HolderKind,
        holder: str,
        display_name: str = "",
    ) -> Account:
        """Open an account, or return the one the holder already has in the village."""
        self._see(caller, tenant)
        if not _HOLDER.match(holder):
            raise InvalidArgument.field(
                "points_account.holder",
                "required: up to 200 letters, digits or '_', '.', '/', ':', '-'",
            )
        account = Account(
            id=new_id(ACCOUNT_PREFIX),
            tenant=tenant,
            holder_kind=holder_kind,
            holder=holder,
            display_name=_text(display_name, "points_account.display_name", 100),
            balance=0,
            create_time=self._clock(),
        )
        return await self.store.open_account(caller.tenant, account)

    async def get_account(self, caller: Principal, tenant: str, account_id: str) -> Account:
        self._see(caller, tenant)
        account = await self.store.get_account(caller.tenant, account_id)
        if account is None or account.tenant != tenant:
            raise NotFound(f"points account {account_id!r} not found")
        return account

    async def list_accounts(
        self, caller: Principal, parent: str, filter: str, page_size: int, page_token: str
    ) -> tuple[list[Account], str]:
        self._see(caller, parent)
        holder = parse_equalities(filter, ("holder",)).get("holder", "")
        size = paging.page_size(page_size)
        query = {"parent": parent, "holder": holder}
        cursor = paging.decode_token(page_token, query)
        after = cursor.get("a") if cursor else None
        if after is not None and not isinstance(after, str):
            raise InvalidArgument.field("page_token", "is not a token this service issued")
        found = await self.store.list_accounts(parent, holder, size + 1, after)
        token = paging.encode_token({"a": found[size - 1].id}, query) if len(found) > size else ""
        return found[:size], token

    # --- rules ------------------------------------------------------------------

    async def create_rule(
        self,
        caller: Principal,
        tenant: str,
        *,
        display_name: str,
        fact_type: str,
        match: Mapping[str, str],
        points: int,
        cap: int = 0,
        cap_period: Period = Period.NONE,
    ) -> Rule:
        self._see(caller, tenant)
        if not _FACT_TYPE.match(fact_type):
            raise InvalidArgument.field(
                "points_rule.fact_type", "a fact type such as 'task.resolved' or 'patrol.completed'"
            )
        if len(match) > MAX_MATCH:
            raise InvalidArgument.field("points_rule.match", f"at most {MAX_MATCH} attributes")
        for key, value in match.items():
            if not _ATTRIBUTE.match(key) or not 0 < len(value) <= 100:
                raise InvalidArgument.field(
                    f"points_rule.match[{key[:40]}]",
                    "keys are lower-case words with '_'; values 1 to 100 characters",
                )
        _amount(points, "points_rule.points")
        if not 0 <= cap <= MAX_CAP:
            raise InvalidArgument.field("points_rule.cap", f"from 0 (no cap) to {MAX_CAP}")
        if cap and cap < points:
            # Such a rule could never pay a single fact in full: a typo, not a policy.
            raise InvalidArgument.field(
                "points_rule.cap", f"{cap} is below the rule's {points} points a fact"
            )
        if cap and cap_period is Period.NONE:
            raise InvalidArgument.field("points_rule.cap_period", "a cap needs a period")
        rule = Rule(
            id=new_id(RULE_PREFIX),
            tenant=tenant,
            display_name=_text(display_name, "points_rule.display_name", 100) or fact_type,
            fact_type=fact_type,
            match=dict(match),
            points=points,
            cap=cap,
            cap_period=cap_period if cap else Period.NONE,
            create_time=self._clock(),
        )
        await self.store.insert_rule(caller.tenant, rule)
        return rule

    async def delete_rule(self, caller: Principal, tenant: str, rule_id: str) -> None:
        """Stop a rule paying; its past entries keep naming it."""
        self._see(caller, tenant)
        if not await self.store.delete_rule(caller.tenant, tenant, rule_id):
            raise NotFound(f"points rule {rule_id!r} not found")

    async def list_rules(self, caller: Principal, tenant: str) -> list[Rule]:
        """The rules that apply in `tenant`: its own, and those of the nodes above it
        that the caller may see."""
        self._see(caller, tenant)
        tenants = [t for t in tenancy.ancestors_and_self(tenant) if caller.can_see(t)]
        return await self.store.rules_of(caller.tenant, tenants)

    # --- postings ---------------------------------------------------------------

    async def credit(
        self,
        caller: Principal,
        tenant: str,
        account_id: str,
        amount: int,
        memo: str,
        request_id: str,
    ) -> Posted:
        """An award by hand; the request_id makes a retry return the first entry."""
        self._see(caller, tenant)
        posting = Posting(
            tenant=tenant,
            account_id=account_id,
            kind=EntryKind.MANUAL_CREDIT,
            requested=_amount(amount),
            idempotency_key=f"request:{_request_id(request_id)}",
            rule_id="",
            memo=_text(memo, "memo"),
            actor=caller.subject,
            time=self._clock(),
        )
        return await self._post(caller.tenant, posting)

    async def redeem(
        self,
        caller: Principal,
        tenant: str,
        account_id: str,
        amount: int,
        memo: str,
        request_id: str,
    ) -> Posted:
        """A purchase at the village shop: never more than the balance."""
        self._see(caller, tenant)
        posting = Posting(
            tenant=tenant,
            account_id=account_id,
            kind=EntryKind.REDEMPTION,
            requested=_amount(amount),
            idempotency_key=f"request:{_request_id(request_id)}",
            rule_id="",
            memo=_text(memo, "memo"),
            actor=caller.subject,
            time=self._clock(),
        )
        return await self._post(caller.tenant, posting)

    async def pays_for(self, tenant: str, fact_type: str) -> bool:
        """Whether a rule of `tenant` or a node above it names `fact_type`: a fact no
        rule names is nothing for the ledger, whatever its payload."""
        if not tenancy.is_valid_path(tenant):
            return True  # let apply_fact refuse it, naming the field
        rules = await self.store.rules_of(tenancy.ALL_TENANTS, tenancy.ancestors_and_self(tenant))
        return any(r.fact_type == fact_type for r in rules)

    async def apply_fact(self, fact: Fact) -> list[Posted]:
        """Pay every rule of the fact's village (and the nodes above) that matches it.

        The service does this for facts on the bus, on behalf of no caller. The
        holder's account in the fact's tenant is opened on first credit.
        """
        if not tenancy.is_valid_path(fact.tenant) or not _HOLDER.match(fact.holder):
            raise InvalidArgument.field("fact", "needs a tenant path and a holder")
        subtree = tenancy.ALL_TENANTS
        rules = [
            r
            for r in await self.store.rules_of(subtree, tenancy.ancestors_and_self(fact.tenant))
            if r.matches(fact)
        ]
        if not rules:
            return []
        now = self._clock()
        account = await self.store.open_account(
            subtree,
            Account(
                id=new_id(ACCOUNT_PREFIX),
                tenant=fact.tenant,
                holder_kind=fact.holder_kind,
                holder=fact.holder,
                display_name="",
                balance=0,
                create_time=now,
            ),
        )
        posted = []
        for rule in rules:
            posting = Posting(
                tenant=account.tenant,
                account_id=account.id,
                kind=EntryKind.RULE_CREDIT,
                requested=rule.points,
                idempotency_key=f"fact:{fact.key}:{rule.id}",
                rule_id=rule.id,
                memo=f"{rule.display_name}: {fact.type}"[:MAX_MEMO],
                actor=fact.subject or "services/empower",
                time=now,
                cap=rule.cap,
                cap_since=period_start(rule.cap_period, now),
            )
            posted.append(await self._post(subtree, posting))
        return posted

    async def _post(self, subtree: str, posting: Posting) -> Posted:
        result = await self.store.post(subtree, posting, settle)
        if not result.created and not _same_posting(result.entry, posting):
            raise FailedPrecondition(
                "this request_id was already used for another posting; use a new one",
                reason="REQUEST_ID_REUSED",
            )
        return result

    # --- statements -------------------------------------------------------------

    async def statement(
        self,
        caller: Principal,
        tenant: str,
        account_id: str,
        page_size: int,
        page_token: str,
    ) -> tuple[Account, list[Entry], str]:
        """The account and a page of its entries, newest first."""
        account = await self.get_account(caller, tenant, account_id)
        size = paging.page_size(page_size)
        query = {"account": account.resource_name}
        cursor = paging.decode_token(page_token, query)
        before = cursor.get("b") if cursor else None
        if before is not None and not isinstance(before, int):
            raise InvalidArgument.field("page_token", "is not a token this service issued")
        entries = await self.store.list_entries(caller.tenant, account_id, size + 1, before)
        token = (
            paging.encode_token({"b": entries[size - 1].sequence}, query)
            if len(entries) > size
            else ""
        )
        return account, entries[:size], token

    @staticmethod
    def _see(caller: Principal, tenant: str) -> None:
        if not caller.can_see(tenant):
            raise NotFound(f"tenant {tenancy.tenant_name(tenant)!r} not found")
