"""REST for photos of reports and resolutions (ADR 36): upload, and read back.

The events service keeps them and tells a photo by its bytes; the gateway bounds the
upload by the contract's limit and serves a photo so a browser can only show it.
"""

from __future__ import annotations

from datetime import UTC
from typing import Annotated

from fastapi import APIRouter, File, Path, Request, Response, Security, UploadFile
from pydantic import BaseModel

from gateway.auth import access, call_metadata, calls
from gateway.errors import ApiError, call
from gateway.paths import TenantId, parent, rest_path
from grassroots.events.v1 import events_service_pb2 as pb
from services.kit import limits
from services.kit.errors import FieldViolation
from services.kit.principal import Principal

router = APIRouter(prefix="/v1/tenants/{tenant}/attachments", tags=["events"])
Who = Annotated[Principal, Security(access("events"))]
# The one declaration of a photo's size: the contract's bound on the bytes.
MAX_BYTES = limits.of(pb.CreateAttachmentRequest, "content").max_length
_ID = r"^at_[a-z0-9]{1,64}$"


class AttachmentOut(BaseModel):
    id: str
    name: str
    content_type: str
    size_bytes: int
    sha256: str
    create_time: str


def attachment_out(attachment: pb.Attachment) -> AttachmentOut:
    return AttachmentOut(
        id=attachment.name.rsplit("/", 1)[-1],
        name=attachment.name,
        content_type=attachment.content_type,
        size_bytes=attachment.size_bytes,
        sha256=attachment.sha256,
        create_time=attachment.create_time.ToDatetime(tzinfo=UTC).isoformat(),
    )


@router.post(
    "",
    status_code=201,
    response_model=AttachmentOut,
    summary="Upload a photo",
    responses={413: {"description": "the photo is larger than the limit"}},
)
@calls("grassroots.events.v1.EventsService", "CreateAttachment")
async def upload_attachment(
    tenant: TenantId,
    request: Request,
    who: Who,
    content: Annotated[
        UploadFile, File(description=f"a JPEG, PNG or WebP photo of at most {MAX_BYTES} bytes")
    ],
) -> Response:
    """Name the answer's `name` in an event's or a task's `media_uris`. What the
    bytes are decides, not the file's name or declared type: anything else is 400."""
    data = await content.read(MAX_BYTES + 1)
    if len(data) > MAX_BYTES:
        message = f"is larger than {MAX_BYTES} bytes"
        raise ApiError(413, f"content: {message}", violations=[FieldViolation("content", message)])
    stored = await call(
        request.app.state.upstreams.events.CreateAttachment(
            pb.CreateAttachmentRequest(parent=parent(tenant), content=data),
            metadata=call_metadata(who),
        )
    )
    return Response(
        content=attachment_out(stored).model_dump_json(),
        status_code=201,
        media_type="application/json",
        headers={"Location": rest_path(stored.name)},
    )


@router.get(
    "/{attachment}",
    summary="A photo",
    response_class=Response,
    responses={200: {"content": {"image/jpeg": {}, "image/png": {}, "image/webp": {}}}},
)
@calls("grassroots.events.v1.EventsService", "GetAttachment")
async def get_attachment(
    tenant: TenantId,
    attachment: Annotated[str, Path(pattern=_ID)],
    request: Request,
    who: Who,
) -> Response:
    """For its uploader and whoever reads the tenant's events; others get 404."""
    found = await call(
        request.app.state.upstreams.events.GetAttachment(
            pb.GetAttachmentRequest(name=f"{parent(tenant)}/attachments/{attachment}"),
            metadata=call_metadata(who),
        )
    )
    return Response(
        content=found.content,
        media_type=found.attachment.content_type,
        headers={
            "Cache-Control": "private, max-age=86400, immutable",
            "Content-Disposition": "inline",
            # Shown, never run: no sniffing, no scripts, no page of its own.
            "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": "default-src 'none'; sandbox",
        },
    )
