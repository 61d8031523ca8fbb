"""REST for reports without an account (ADR 35) and the settings that allow them.

The three public routes are custom methods on a tenant's events: report, follow by
receipt, rate by receipt. The receipt travels in the body, never in a path or query,
so it stays out of access logs. The events service decides which villages take such
reports and how many an hour; the gateway adds a per-address hourly bucket.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, File, Form, Request, Response, Security, UploadFile
from google.protobuf.field_mask_pb2 import FieldMask

from gateway.auth import (
    access,
    call_metadata,
    calls,
    limit_anonymous_photos,
    limit_anonymous_reports,
    public_intake,
)
from gateway.errors import ApiError, call
from gateway.event_creates import REPLAYED_KEY
from gateway.patch_bodies import fields_sent
from gateway.paths import TenantId, parent, rest_path
from gateway.routers.attachments import MAX_BYTES, AttachmentOut, attachment_out
from gateway.routers.events import event_out
from gateway.schemas.common import CRS_DESCRIPTION
from gateway.schemas.contract import bounds
from gateway.schemas.events import (
    AnonymousReportIn,
    AnonymousReportOut,
    IntakeSettingsIn,
    IntakeSettingsOut,
    ReceiptEvaluationIn,
    ReceiptIn,
)
from grassroots.events.v1 import events_service_pb2 as pb
from grassroots.type.v1 import geo_pb2
from services.kit import tenancy
from services.kit.errors import FieldViolation
from services.kit.principal import Principal

settings_router = APIRouter(prefix="/v1/tenants/{tenant}/intakeSettings", tags=["events"])
public_router = APIRouter(prefix="/v1/tenants/{tenant}/events", tags=["events"])
Who = Annotated[Principal, Security(access("events"))]
Passerby = Annotated[Principal, Depends(public_intake("events"))]


def _settings_out(settings: pb.IntakeSettings) -> IntakeSettingsOut:
    return IntakeSettingsOut(
        name=settings.name,
        anonymous_reports=settings.anonymous_reports,
        anonymous_reports_per_hour=settings.anonymous_reports_per_hour,
        defined_at=settings.defined_at,
    )


@settings_router.get("", response_model=IntakeSettingsOut, summary="Who may report here")
@calls("grassroots.events.v1.EventsService", "GetIntakeSettings")
async def get_intake_settings(tenant: TenantId, request: Request, who: Who) -> IntakeSettingsOut:
    """The settings that apply at the tenant: its own, or the nearest level above's."""
    found = await call(
        request.app.state.upstreams.events.GetIntakeSettings(
            pb.GetIntakeSettingsRequest(name=f"{parent(tenant)}/intakeSettings"),
            metadata=call_metadata(who),
        )
    )
    return _settings_out(found)


@settings_router.patch(
    "", response_model=IntakeSettingsOut, summary="Allow reports without an account"
)
@calls("grassroots.events.v1.EventsService", "UpdateIntakeSettings")
async def update_intake_settings(
    tenant: TenantId, body: IntakeSettingsIn, request: Request, who: Who
) -> IntakeSettingsOut:
    """The fields sent are replaced, for the tenant's subtree (a village below may decide
    otherwise); those left out keep what applies at the tenant now. Needs the
    events:configure scope."""
    # The fields present, null ones too: null is a bad value, not "leave it".
    paths = fields_sent(body, sorted(type(body).model_fields))
    for name in paths:
        if getattr(body, name) is None:
            raise ApiError(
                400,
                f"{name}: may not be null",
                violations=[FieldViolation(name, "may not be null")],
            )
    stored = await call(
        request.app.state.upstreams.events.UpdateIntakeSettings(
            pb.UpdateIntakeSettingsRequest(
                intake_settings=pb.IntakeSettings(
                    name=f"{parent(tenant)}/intakeSettings",
                    anonymous_reports=bool(body.anonymous_reports),
                    anonymous_reports_per_hour=body.anonymous_reports_per_hour or 0,
                ),
                update_mask=FieldMask(paths=paths),
            ),
            metadata=call_metadata(who),
        ),
        strip_prefix="intake_settings.",
    )
    return _settings_out(stored)


def _under(tenant: str, report: pb.AnonymousReport) -> pb.AnonymousReport:
    """A report is found under its village and the tenants above it, as events are."""
    if not tenancy.contains(tenancy.id_to_path(tenant), report.event.village):
        raise ApiError(404, "no report has this receipt", reason="NOT_FOUND")
    return report


def _report_json(report: pb.AnonymousReport, headers: dict[str, str] | None = None) -> Response:
    body = AnonymousReportOut(receipt=report.receipt or None, event=event_out(report.event))
    return Response(
        content=body.model_dump_json(),
        media_type="application/json",
        headers={"Cache-Control": "no-store", **(headers or {})},
    )


@public_router.post(
    ":reportAnonymously",
    response_model=AnonymousReportOut,
    summary="Report without an account",
    responses={403: {"description": "the village takes reports only from signed-in people"}},
)
@calls("grassroots.events.v1.EventsService", "ReportAnonymously")
async def report_anonymously(
    tenant: TenantId, body: AnonymousReportIn, request: Request, who: Passerby
) -> Response:
    """Where the village the location lies in allows it. The answer's `receipt` is the
    only way to follow and rate the report: keep it. A retry with the same
    `request_id` is the same report with the same receipt. Limited per address and
    per village and hour (429 with Retry-After)."""
    await limit_anonymous_reports(request)
    rpc = request.app.state.upstreams.events.ReportAnonymously(
        pb.ReportAnonymouslyRequest(
            parent=parent(tenant),
            request_id=body.request_id,
            event=pb.Event(
                category=body.category,
                description=body.description,
                location=geo_pb2.GeoPoint(
                    longitude=body.location.longitude,
                    latitude=body.location.latitude,
                    crs=body.location.crs,
                ),
                media_uris=body.media_uris,
                address=body.address,
            ),
        ),
        metadata=call_metadata(who),
    )
    report = await call(rpc, strip_prefix="event.")
    trailing = await rpc.trailing_metadata()
    replayed = any(k == REPLAYED_KEY and v == "true" for k, v in trailing or ())
    return _report_json(report, {"Idempotent-Replayed": "true" if replayed else "false"})


@public_router.post(
    ":followReceipt", response_model=AnonymousReportOut, summary="Follow a report by receipt"
)
@calls("grassroots.events.v1.EventsService", "GetAnonymousReport")
async def follow_receipt(
    tenant: TenantId, body: ReceiptIn, request: Request, who: Passerby
) -> Response:
    """The report's state and timeline, without personal data; 404 for a wrong receipt."""
    report = await call(
        request.app.state.upstreams.events.GetAnonymousReport(
            pb.GetAnonymousReportRequest(receipt=body.receipt), metadata=call_metadata(who)
        )
    )
    return _report_json(_under(tenant, report))


@public_router.post(
    ":evaluateReceipt", response_model=AnonymousReportOut, summary="Rate a report by receipt"
)
@calls("grassroots.events.v1.EventsService", "GetAnonymousReport")
@calls("grassroots.events.v1.EventsService", "EvaluateAnonymousReport")
async def evaluate_receipt(
    tenant: TenantId, body: ReceiptEvaluationIn, request: Request, who: Passerby
) -> Response:
    """Once it is resolved: a 1-5 score and words, which close it."""
    await follow_receipt(tenant, ReceiptIn(receipt=body.receipt), request, who)
    report = await call(
        request.app.state.upstreams.events.EvaluateAnonymousReport(
            pb.EvaluateAnonymousReportRequest(
                receipt=body.receipt, score=body.score, text=body.text
            ),
            metadata=call_metadata(who),
        )
    )
    return _report_json(report)


@public_router.post(
    ":attachAnonymously",
    status_code=201,
    response_model=AttachmentOut,
    summary="Upload a photo for a report without an account",
    responses={
        403: {"description": "the village takes reports only from signed-in people"},
        413: {"description": "the photo is larger than the limit"},
    },
)
@calls("grassroots.events.v1.EventsService", "AttachAnonymously")
async def attach_anonymously(
    tenant: TenantId,
    request: Request,
    who: Passerby,
    content: Annotated[
        UploadFile, File(description=f"a JPEG, PNG or WebP photo of at most {MAX_BYTES} bytes")
    ],
    request_id: Annotated[
        str,
        Form(
            **bounds(pb.ReportAnonymouslyRequest, "request_id"),
            description="the request_id the report will be sent with (its secret)",
        ),
    ],
    longitude: Annotated[float, Form(ge=-180, le=180, description="where the report is")],
    latitude: Annotated[float, Form(ge=-90, le=90)],
    crs: Annotated[str, Form(**bounds(geo_pb2.GeoPoint, "crs"), description=CRS_DESCRIPTION)] = "",
) -> Response:
    """Send it before the report, with the report's `request_id` and place, and name
    the answer's `name` in the report's `media_uris`: only that report may. The
    village the place lies in keeps it and must take reports without an account;
    photos are as limited as reports (per address and hour, and the village's hour)."""
    await limit_anonymous_photos(request)
    data = await content.read(MAX_BYTES + 1)
    if len(data) > MAX_BYTES:
        message = f"is larger than {MAX_BYTES} bytes"
        raise ApiError(413, f"content: {message}", violations=[FieldViolation("content", message)])
    stored = await call(
        request.app.state.upstreams.events.AttachAnonymously(
            pb.AttachAnonymouslyRequest(
                attachment=pb.CreateAttachmentRequest(parent=parent(tenant), content=data),
                location=geo_pb2.GeoPoint(longitude=longitude, latitude=latitude, crs=crs),
                request_id=request_id,
            ),
            metadata=call_metadata(who),
        ),
        strip_prefix="attachment.",
    )
    return Response(
        content=attachment_out(stored).model_dump_json(),
        status_code=201,
        media_type="application/json",
        headers={"Location": rest_path(stored.name), "Cache-Control": "no-store"},
    )
