"""The audit log of reads of personal data and of administrative actions:
append-only and hash-chained.

Whoever sees a resident's full name, ID number or phone number leaves one entry:
who, through which app, from which tenant, which records, which fields, when and
why. Administrative actions (tenants, users, roles, apps, keys, password resets)
leave one too, in the same chain (ADR 14). Entries form one chain for the whole
platform: each entry's hash covers the previous entry's hash and every field of
the entry itself, so changing, removing or reordering any entry after the fact
breaks the chain at that point, and `verify` says where.

    entry_hash = sha256(prev_hash || canonical JSON of the entry)

The canonical JSON has sorted keys, no spaces and UTF-8 text; the first entry's
prev_hash is 64 zeros. The stores append under a lock on the chain head, so two
concurrent appends can never link to the same predecessor (the chain never forks).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from services.empower.domain.people_model import (
    GENESIS_HASH,
    ONE_US,
    AuditEntry,
    AuditFilter,
    AuditPage,
    VerifyResult,
    link,
)
from services.empower.domain.people_ports import AuditStore
from services.kit import paging, tenancy
from services.kit.errors import InvalidArgument, NotFound, PermissionDenied
from services.kit.filtering import parse_terms
from services.kit.principal import Principal
from services.kit.timestamps import parse_time

AUDIT_READ_SCOPE = "audit:read"
AUDIT_VERIFY_SCOPE = "audit:verify"
READ_ACTION = "people.read"
# An exact lookup by ID number or phone, audited whether or not anything matched.
LOOKUP_ACTION = "people.lookup"
MAX_PURPOSE = 500
FILTERABLE = {
    "subject": ("=",),
    "record": ("=",),
    "time": (">=", ">", "<=", "<"),
}


def to_filter(filter_text: str) -> AuditFilter:
    """`subject = "..." AND record = "tenants/.../people/..." AND time >= "RFC 3339"`."""
    subject = record = ""
    time_from: datetime | None = None
    time_before: datetime | None = None
    for term in parse_terms(filter_text, FILTERABLE):
        if term.field in ("subject", "record"):
            if (subject if term.field == "subject" else record) or not term.value:
                raise InvalidArgument.field("filter", f"{term.field!r} appears twice or is empty")
            if term.field == "subject":
                subject = term.value
            else:
                record = term.value
            continue
        moment = parse_time(term.value, "filter")
        # Every bound becomes [from, before) on whole microseconds, as stored.
        if term.op in (">=", ">"):
            bound = moment + ONE_US if term.op == ">" else moment
            time_from = bound if time_from is None else max(time_from, bound)
        else:
            bound = moment + ONE_US if term.op == "<=" else moment
            time_before = bound if time_before is None else min(time_before, bound)
    return AuditFilter(subject, record, time_from, time_before)


def check_purpose(purpose: str) -> str:
    """A reason is required for every unmasked read; it is kept verbatim in the entry."""
    text = purpose.strip()
    if not text:
        raise InvalidArgument.field(
            "purpose", "reading unmasked personal data needs a stated purpose"
        )
    if len(text) > MAX_PURPOSE:
        raise InvalidArgument.field("purpose", f"at most {MAX_PURPOSE} characters")
    return text


class ChainVerifier:
    """Walks entries in sequence order and finds the first one that does not verify."""

    def __init__(self) -> None:
        self.expected = 1
        self.prev_hash = GENESIS_HASH
        self.checked = 0
        self.first_bad: int | None = None

    def feed(self, entry: AuditEntry) -> bool:
        """Check the next entry; False (and `first_bad` set) at the first break."""
        if self.first_bad is not None:
            return False
        if (
            entry.sequence != self.expected
            or entry.prev_hash != self.prev_hash
            or entry.computed_hash() != entry.entry_hash
        ):
            # A missing or renumbered entry is reported at the sequence that should be there.
            self.first_bad = self.expected
            return False
        self.prev_hash = entry.entry_hash
        self.expected += 1
        self.checked += 1
        return True

    def finish(self, head_sequence: int, head_hash: str) -> VerifyResult:
        """Compare the walk with the chain head, which catches a cut-off tail."""
        if self.first_bad is None:
            if self.checked != head_sequence:
                self.first_bad = min(self.checked, head_sequence) + 1
            elif self.prev_hash != head_hash:
                self.first_bad = max(self.checked, 1)
        return VerifyResult(self.first_bad is None, self.checked, self.first_bad)


class AuditLog:
    """Writes read entries and lets auditors list and verify them."""

    def __init__(self, store: AuditStore, clock: Callable[[], datetime] | None = None) -> None:
        self.store = store
        self._clock = clock or (lambda: datetime.now(UTC))

    async def record_read(
        self,
        caller: Principal,
        records: Sequence[str],
        fields: Sequence[str],
        purpose: str,
        *,
        action: str = READ_ACTION,
    ) -> AuditEntry:
        """Append one entry for one call that revealed `fields` of `records`.

        Raises if it cannot be written; callers must not reveal anything then.
        """
        draft = AuditEntry(
            sequence=0,
            time=self._clock(),
            subject=caller.subject,
            app=caller.app,
            tenant=caller.tenant,
            action=action,
            purpose=check_purpose(purpose),
            records=tuple(records),
            fields=tuple(fields),
        )
        return await self.store.append_audit(
            caller.tenant, lambda sequence, prev: link(draft, sequence, prev)
        )

    async def record_action(
        self,
        caller: Principal,
        action: str,
        records: Sequence[str],
        fields: Sequence[str],
        purpose: str = "",
    ) -> AuditEntry:
        """Append one entry for an administrative action (ADR 14): `records` are the
        resources acted on, `fields` what changed (never a secret); purpose optional."""
        draft = AuditEntry(
            sequence=0,
            time=self._clock(),
            subject=caller.subject,
            app=caller.app,
            tenant=caller.tenant,
            action=action,
            purpose=purpose.strip()[:MAX_PURPOSE],
            records=tuple(records),
            fields=tuple(fields),
        )
        return await self.store.append_audit(
            caller.tenant, lambda sequence, prev: link(draft, sequence, prev)
        )

    async def list_entries(
        self,
        caller: Principal,
        parent: str,
        filter_text: str = "",
        page_size: int = 0,
        page_token: str = "",
    ) -> AuditPage:
        """Entries made by callers in `parent`'s subtree, newest first."""
        if not caller.has_scope(AUDIT_READ_SCOPE):
            raise PermissionDenied(f"reading the audit log needs the {AUDIT_READ_SCOPE!r} scope")
        tenancy.validate_path(parent, "parent")
        if not caller.can_see(parent):
            raise NotFound(f"tenant {tenancy.tenant_name(parent)!r} not found")
        filters = to_filter(filter_text)
        limit = paging.page_size(page_size)
        query = {"parent": parent, "filter": filter_text}
        cursor = paging.decode_token(page_token, query)
        before = None
        if cursor is not None:
            before = cursor.get("s")
            if not isinstance(before, int):
                raise InvalidArgument.field("page_token", "is not a token this service issued")
        entries = await self.store.list_audit(parent, filters, limit + 1, before)
        token = ""
        if len(entries) > limit:
            entries = entries[:limit]
            token = paging.encode_token({"s": entries[-1].sequence}, query)
        return AuditPage(entries, token)

    async def verify(self, caller: Principal | None = None, *, batch: int = 1000) -> VerifyResult:
        """Recompute the whole chain up to its head.

        `caller` None is the platform's own scheduled check; a principal needs the
        `audit:verify` scope, since the chain spans every tenant.
        """
        if caller is not None and not caller.has_scope(AUDIT_VERIFY_SCOPE):
            raise PermissionDenied(
                f"verifying the audit chain needs the {AUDIT_VERIFY_SCOPE!r} scope"
            )
        head_sequence, head_hash = await self.store.audit_head()
        verifier = ChainVerifier()
        after = 0
        while after < head_sequence:
            entries = await self.store.audit_chain(after, head_sequence, batch)
            if not entries:
                break
            for entry in entries:
                if not verifier.feed(entry):
                    return verifier.finish(head_sequence, head_hash)
            after = entries[-1].sequence
        return verifier.finish(head_sequence, head_hash)
