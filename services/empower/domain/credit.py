"""Village credit: a household's good-deed points give it a credit score a bank reads
with the household's consent.

Why it is built this way (ADR 37):

* **Consent names a consumer, a purpose and an end.** A consent is the household's
  permission for one app (a bank's, registered at the village or a node above it, so
  that it can reach the village at all) to read its score for one purpose until an
  expiry; revoking ends it at once. Village staff record consents on the household's
  behalf (`credit:consent`), as they do its other paperwork.
* **A score is only ever read under a consent.** The consumer must be the calling app
  itself and the purpose the one it states; staff and people read ledgers, not scores.
  An account outside the caller's subtree, or not in the village the name gives, is
  NOT_FOUND, as everywhere (another village's account never answers 403); an account
  the caller can reach without a consent in force is PERMISSION_DENIED (reason
  CONSENT_REQUIRED). Account ids are random, and a bank learns a household's account
  name from the household itself, so the 403 confirms nothing it did not already know.
* **Every read is accountable.** A granted read and a refused one each append an entry
  to the audit chain (`credit.score.read`, `credit.score.refused`) naming the account,
  the consent and the purpose, before the answer leaves; if the entry cannot be
  written nothing is revealed.
* **One rule, tuned per village.** The arithmetic is `Policy.score` in
  `credit_model`; a village's policy (or the nearest one above it) supplies its
  weights, window and bands, each within the bounds the contract declares.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta

from services.empower.domain.audit import AuditLog
from services.empower.domain.credit_model import (
    MAX_SCORE,
    Band,
    Consent,
    Policy,
    Score,
)
from services.empower.domain.credit_ports import ConsumerApps, CreditStore, LedgerSummary
from services.empower.domain.points_model import parse_account_name
from services.empower.domain.points_ports import PointsStore
from services.kit import paging, tenancy
from services.kit.errors import (
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
)
from services.kit.filtering import parse_equalities
from services.kit.ids import new_id
from services.kit.masking import SENSITIVE_SCOPE, mask_name
from services.kit.principal import Principal

POLICY_PREFIX = "cp"
CONSENT_PREFIX = "cc"
MAX_CONSENT = timedelta(days=3 * 366)
MAX_BANDS = 8
CONSENT_REQUIRED = "CONSENT_REQUIRED"
READ_ACTION = "credit.score.read"
REFUSED_ACTION = "credit.score.refused"
GRANT_ACTION = "credit.consent.grant"
REVOKE_ACTION = "credit.consent.revoke"

_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}\Z")
_PURPOSE = re.compile(r"^[a-z][a-z0-9_]{0,39}\Z")
_BAND = re.compile(r"^[A-Za-z0-9+_-]{1,16}\Z")
_REQUEST_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,128}\Z")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _bounded(value: int, field: str, low: int, high: int) -> int:
    if not low <= value <= high:
        raise InvalidArgument.field(field, f"must be a whole number from {low} to {high}")
    return value


def _purpose(value: str, field: str) -> str:
    if not _PURPOSE.match(value):
        raise InvalidArgument.field(
            field, "required: a lower-case code such as 'loan_assessment' (up to 40 characters)"
        )
    return value


def check_bands(bands: Sequence[Band], field: str = "credit_policy.bands") -> tuple[Band, ...]:
    """Highest first, min_score strictly falling, the last one 0: every score has a band."""
    if not 1 <= len(bands) <= MAX_BANDS:
        raise InvalidArgument.field(field, f"from 1 to {MAX_BANDS} bands")
    seen: set[str] = set()
    for i, band in enumerate(bands):
        if not _BAND.match(band.band) or band.band in seen:
            raise InvalidArgument.field(
                f"{field}[{i}].band", "a unique label of 1 to 16 letters, digits, '+', '_', '-'"
            )
        seen.add(band.band)
        _bounded(band.min_score, f"{field}[{i}].min_score", 0, MAX_SCORE)
        if i and band.min_score >= bands[i - 1].min_score:
            raise InvalidArgument.field(
                f"{field}[{i}].min_score", "bands go highest first: each below the one before"
            )
    if bands[-1].min_score != 0:
        raise InvalidArgument.field(
            f"{field}[{len(bands) - 1}].min_score", "the last band starts at 0"
        )
    return tuple(bands)


def _app_of(consumer: str) -> tuple[str, str]:
    """`tenants/{t}/apps/{a}` -> (tenant path, app id)."""
    tenant, app_id = tenancy.parse_child_name(consumer, "apps", "credit_consent.consumer")
    if tenant is None:
        raise InvalidArgument.field("credit_consent.consumer", "name the app's tenant, not '-'")
    return tenant, app_id


class CreditDesk:
    """Policies, consents and scores, checked for tenancy, consent and scope."""

    def __init__(
        self,
        store: CreditStore,
        points: PointsStore,
        ledger: LedgerSummary,
        apps: ConsumerApps,
        audit: AuditLog,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.store = store
        self.points = points
        self.ledger = ledger
        self.apps = apps
        self.audit = audit
        self._clock = clock or (lambda: datetime.now(UTC))

    def now(self) -> datetime:
        return self._clock()

    # --- policies ---------------------------------------------------------------------

    async def create_policy(
        self,
        caller: Principal,
        tenant: str,
        policy_id: str,
        *,
        display_name: str,
        window_days: int,
        base_score: int,
        points_weight: int,
        deed_weight: int,
        bands: Sequence[Band],
    ) -> Policy:
        self._see(caller, tenant)
        if not _ID.match(policy_id):
            raise InvalidArgument.field(
                "credit_policy_id", "1 to 63 lower-case letters, digits, '-' or '_'"
            )
        name = " ".join(display_name.split())
        if len(name) > 100 or _CONTROL.search(display_name):
            raise InvalidArgument.field("credit_policy.display_name", "at most 100 characters")
        policy = Policy(
            id=policy_id,
            tenant=tenant,
            display_name=name or policy_id,
            window_days=_bounded(window_days, "credit_policy.window_days", 30, 1095),
            base_score=_bounded(base_score, "credit_policy.base_score", 0, MAX_SCORE),
            points_weight=_bounded(points_weight, "credit_policy.points_weight", 0, 100),
            deed_weight=_bounded(deed_weight, "credit_policy.deed_weight", 0, 100),
            bands=check_bands(bands),
            create_time=self._clock(),
        )
        held, inserted = await self.store.insert_policy(caller.tenant, policy)
        if held.id != policy.id:
            raise FailedPrecondition(
                f"{tenancy.tenant_name(tenant)} already has the credit policy {held.id!r}; "
                "a node holds one: delete it first",
                reason="POLICY_EXISTS",
            )
        if not inserted:
            raise AlreadyExists(f"credit policy {held.resource_name!r} already exists")
        return held

    async def get_policy(self, caller: Principal, tenant: str, policy_id: str) -> Policy:
        self._see(caller, tenant)
        found = await self.store.get_policy(caller.tenant, tenant, policy_id)
        if found is None:
            raise NotFound(f"credit policy {policy_id!r} not found")
        return found

    async def list_policies(self, caller: Principal, tenant: str) -> list[Policy]:
        """The policies of the node and the nodes above it the caller may see, the
        nearest (the one that scores the node's households) last."""
        self._see(caller, tenant)
        tenants = [t for t in tenancy.ancestors_and_self(tenant) if caller.can_see(t)]
        found = await self.store.policies_of(caller.tenant, tenants)
        return sorted(found, key=lambda p: p.tenant.count("/"))

    async def delete_policy(self, caller: Principal, tenant: str, policy_id: str) -> None:
        self._see(caller, tenant)
        if not await self.store.delete_policy(caller.tenant, tenant, policy_id):
            raise NotFound(f"credit policy {policy_id!r} not found")

    # --- consents ---------------------------------------------------------------------

    async def grant(
        self,
        caller: Principal,
        tenant: str,
        *,
        household: str,
        consumer: str,
        purpose: str,
        expire_time: datetime | None,
        request_id: str,
    ) -> Consent:
        """Record a household's consent; a retry with the request_id returns it again."""
        self._see(caller, tenant)
        if not _REQUEST_ID.match(request_id):
            raise InvalidArgument.field(
                "request_id", "required: 1 to 128 letters, digits, '_', '.', ':' or '-'"
            )
        house_tenant, account_id = parse_account_name(household, "credit_consent.household")
        if house_tenant != tenant:
            raise InvalidArgument.field(
                "credit_consent.household", "must be an account of the consent's own village"
            )
        account = await self.points.get_account(caller.tenant, account_id)
        if account is None or account.tenant != tenant:
            raise InvalidArgument.field(
                "credit_consent.household", f"no points account {household[:200]!r} here"
            )
        app_tenant, app_id = _app_of(consumer)
        if not tenancy.contains(app_tenant, tenant):
            raise InvalidArgument.field(
                "credit_consent.consumer",
                "must be an app of the household's village or of a node above it",
            )
        if not await self.apps.app_exists(app_tenant, app_id):
            raise InvalidArgument.field(
                "credit_consent.consumer", f"no app {consumer[:200]!r} is registered"
            )
        _purpose(purpose, "credit_consent.purpose")
        now = self._clock()
        if expire_time is None or expire_time <= now:
            raise InvalidArgument.field("credit_consent.expire_time", "required, in the future")
        if expire_time > now + MAX_CONSENT:
            raise InvalidArgument.field(
                "credit_consent.expire_time", "at most 3 years from now: ask again then"
            )
        consent = Consent(
            id=new_id(CONSENT_PREFIX),
            tenant=tenant,
            household=household,
            consumer=consumer,
            purpose=purpose,
            expire_time=expire_time,
            granted_by=caller.subject,
            request_id=request_id,
            create_time=now,
        )
        stored = await self.store.insert_consent(caller.tenant, consent)
        if stored.id == consent.id:
            await self.audit.record_action(
                caller, GRANT_ACTION, [stored.resource_name, household, consumer], [purpose]
            )
        elif (stored.household, stored.consumer, stored.purpose) != (
            household,
            consumer,
            purpose,
        ):
            raise FailedPrecondition(
                "this request_id was already used for another consent; use a new one",
                reason="REQUEST_ID_REUSED",
            )
        return stored

    async def get_consent(self, caller: Principal, tenant: str, consent_id: str) -> Consent:
        self._see(caller, tenant)
        found = await self.store.get_consent(caller.tenant, consent_id)
        if found is None or found.tenant != tenant:
            raise NotFound(f"credit consent {consent_id!r} not found")
        return found

    async def list_consents(
        self, caller: Principal, parent: str, filter: str, page_size: int, page_token: str
    ) -> tuple[list[Consent], str]:
        self._see(caller, parent)
        terms = parse_equalities(filter, ("household", "consumer"))
        size = paging.page_size(page_size)
        query = {"parent": parent, **terms}
        cursor = paging.decode_token(page_token, query)
        after = cursor.get("a") if cursor else None
        if after is not None and not isinstance(after, str):
            raise InvalidArgument.field("page_token", "is not a token this service issued")
        found = await self.store.list_consents(
            parent, terms.get("household", ""), terms.get("consumer", ""), size + 1, after
        )
        token = paging.encode_token({"a": found[size - 1].id}, query) if len(found) > size else ""
        return found[:size], token

    async def revoke(self, caller: Principal, tenant: str, consent_id: str) -> Consent:
        """End a consent now; a revoked one is returned as it is."""
        before = await self.get_consent(caller, tenant, consent_id)
        if before.revoke_time is not None:
            return before
        after = await self.store.revoke_consent(caller.tenant, consent_id, self._clock())
        if after is None:
            raise NotFound(f"credit consent {consent_id!r} not found")
        await self.audit.record_action(
            caller, REVOKE_ACTION, [after.resource_name, after.household, after.consumer], []
        )
        return after

    # --- scores -----------------------------------------------------------------------

    async def score(self, caller: Principal, tenant: str, account_id: str, purpose: str) -> Score:
        """The household's score for the calling app, under a consent in force."""
        household = f"{tenancy.tenant_name(tenant)}/pointsAccounts/{account_id}"
        _purpose(purpose, "purpose")
        if not caller.can_see(tenant):
            await self._refused(caller, household, purpose, "outside the caller's subtree")
            raise NotFound(f"tenant {tenancy.tenant_name(tenant)!r} not found")
        # An account outside the named village is NOT_FOUND, as for every resource:
        # another village's account named under this one tells the caller nothing.
        account = await self.points.get_account(caller.tenant, account_id)
        if account is None or account.tenant != tenant:
            await self._refused(caller, household, purpose, "no such account")
            raise NotFound(f"points account {account_id!r} not found")
        now = self._clock()
        consent = None
        if caller.kind == "app" and caller.app:
            consent = await self.store.consent_in_force(
                caller.tenant, household, caller.app, purpose, now
            )
        if consent is None:
            await self._refused(caller, household, purpose, "no consent in force")
            raise PermissionDenied(
                "reading this credit score needs the household's consent for this app and "
                f"purpose {purpose!r}, in force now",
                reason=CONSENT_REQUIRED,
            )
        policies = await self.store.policies_of(
            tenancy.ALL_TENANTS, tenancy.ancestors_and_self(tenant)
        )
        if not policies:
            await self._refused(caller, household, purpose, "no credit policy")
            raise FailedPrecondition(
                f"no credit policy applies to {tenancy.tenant_name(tenant)}",
                reason="NO_CREDIT_POLICY",
            )
        policy = max(policies, key=lambda p: p.tenant.count("/"))
        since = now - timedelta(days=policy.window_days)
        earned, deeds = await self.ledger.credited_since(caller.tenant, account_id, since)
        value, band = policy.score(earned, deeds)
        # The read is on the chain before anything of it leaves.
        await self.audit.record_action(
            caller,
            READ_ACTION,
            [household, consent.resource_name],
            ["score", "band"],
            purpose,
        )
        label = account.display_name
        if not caller.has_scope(SENSITIVE_SCOPE):
            label = mask_name(label) if label else ""
        return Score(
            household=household,
            display_name=label,
            score=value,
            band=band,
            points_earned=earned,
            deeds=deeds,
            window_start=since,
            policy=policy.resource_name,
            consent=consent.resource_name,
            compute_time=now,
        )

    async def _refused(self, caller: Principal, household: str, purpose: str, why: str) -> None:
        await self.audit.record_action(
            caller, REFUSED_ACTION, [household], [], f"{purpose}: refused, {why}"
        )

    @staticmethod
    def _see(caller: Principal, tenant: str) -> None:
        if not caller.can_see(tenant):
            raise NotFound(f"tenant {tenancy.tenant_name(tenant)!r} not found")
