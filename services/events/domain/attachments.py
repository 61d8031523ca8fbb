"""Photos of a report or of its resolution, kept by the events service (ADR 36).

A photo is told by its bytes, never by the name or type a client claims: JPEG, PNG and
WebP only (what phones take and browsers show), so nothing a browser would run or
render as a page is ever served back. Events and tasks name a photo in `media_uris` by
its resource name; an event may name only photos its reporter uploaded.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime

from services.events.domain import access
from services.kit import tenancy
from services.kit.errors import InvalidArgument, NotFound
from services.kit.ids import new_id
from services.kit.media import ATTACHMENT_NAME
from services.kit.principal import Principal


@dataclass(frozen=True)
class Attachment:
    id: str
    tenant: str
    uploader: str
    content_type: str
    size_bytes: int
    sha256: str
    create_time: datetime


def sniff(content: bytes) -> str | None:
    """The image type the bytes begin with, or None."""
    if content.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if content.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if len(content) >= 12 and content[:4] == b"RIFF" and content[8:12] == b"WEBP":
        return "image/webp"
    return None


def new_attachment(principal: Principal, tenant: str, content: bytes) -> Attachment:
    """A photo to store; INVALID_ARGUMENT naming `content` when it is not one."""
    kind = sniff(content)
    if kind is None:
        raise InvalidArgument.field("content", "is not a JPEG, PNG or WebP image")
    return Attachment(
        id=new_id("at"),
        tenant=tenant,
        uploader=principal.subject,
        content_type=kind,
        size_bytes=len(content),
        sha256=hashlib.sha256(content).hexdigest(),
        create_time=datetime.now(UTC),
    )


def parse_reference(uri: str) -> tuple[str, str] | None:
    """(tenant path, attachment id) of a photo's resource name; None for a URL."""
    match = ATTACHMENT_NAME.fullmatch(uri)
    if match is None:
        return None
    return tenancy.id_to_path(match.group(1)), match.group(2)


def reads(principal: Principal, attachment: Attachment) -> bool:
    """Its uploader, and whoever reads the tenant's events (staff, handlers, apps)."""
    return principal.can_see(attachment.tenant) and (
        principal.subject == attachment.uploader or access.reads_subtree(principal)
    )


def check_usable(
    principal: Principal, attachment: Attachment | None, field: str, reporter: str = ""
) -> None:
    """A photo a report may name: one the reporter uploaded (services may name any).

    `reporter` is the report's reporter when it is not the caller: a report without an
    account is made by the gateway's passer-by for the receipt it names (ADR 35).
    """
    if attachment is None or not principal.can_see(attachment.tenant):
        raise InvalidArgument.field(field, "names no photo you uploaded")
    if principal.kind != "service" and (reporter or principal.subject) != attachment.uploader:
        raise InvalidArgument.field(field, "names no photo you uploaded")


def not_found(attachment_id: str) -> NotFound:
    return NotFound(f"attachment {attachment_id[:64]!r} not found")
