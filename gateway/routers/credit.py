"""REST for village credit: policies, households' consents, and scores read under them.

Policies need `points:write` to write, consents `credit:consent`; reads of both need
`empower:read`. A score needs `credit:read` and a consent in force naming the calling
app and the stated purpose: without one the answer is 403 (reason CONSENT_REQUIRED),
outside the caller's subtree 404; each read, given or refused, is on the audit chain.
"""

from __future__ import annotations

from datetime import UTC
from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, Response, Security
from google.protobuf.timestamp_pb2 import Timestamp

from gateway.auth import access, call_metadata, calls
from gateway.errors import call
from gateway.paths import TenantId, parent, rest_path
from gateway.schemas.contract import query
from gateway.schemas.credit import (
    CreditBand,
    CreditConsentCreate,
    CreditConsentList,
    CreditConsentOut,
    CreditPolicyCreate,
    CreditPolicyList,
    CreditPolicyOut,
    CreditScoreOut,
)
from gateway.schemas.identity import RESOURCE_ID_PATTERN
from grassroots.empower.v1 import credit_service_pb2 as pb
from services.kit.filtering import quote
from services.kit.principal import Principal

SERVICE = "grassroots.empower.v1.CreditService"
router = APIRouter(prefix="/v1/tenants/{tenant}", tags=["credit"])
Who = Annotated[Principal, Security(access("empower"))]
PolicyId = Annotated[str, Path(pattern=RESOURCE_ID_PATTERN, description="credit policy id")]
ConsentId = Annotated[str, Path(pattern=RESOURCE_ID_PATTERN, description="credit consent id")]
AccountId = Annotated[str, Path(pattern=RESOURCE_ID_PATTERN, description="points account id")]
PageSize = Annotated[int, Query(ge=1, le=1000)]
PageToken = Annotated[str, Query(max_length=512)]

_STATE_NAMES = {
    pb.CreditConsent.STATE_ACTIVE: "active",
    pb.CreditConsent.STATE_REVOKED: "revoked",
    pb.CreditConsent.STATE_EXPIRED: "expired",
}


def policy_out(policy: pb.CreditPolicy) -> CreditPolicyOut:
    return CreditPolicyOut(
        id=policy.name.rsplit("/", 1)[-1],
        name=policy.name,
        display_name=policy.display_name,
        window_days=policy.window_days,
        base_score=policy.base_score,
        points_weight=policy.points_weight,
        deed_weight=policy.deed_weight,
        bands=[CreditBand(band=b.band, min_score=b.min_score) for b in policy.bands],
        create_time=policy.create_time.ToDatetime(tzinfo=UTC),
    )


def consent_out(consent: pb.CreditConsent) -> CreditConsentOut:
    return CreditConsentOut(
        id=consent.name.rsplit("/", 1)[-1],
        name=consent.name,
        household=consent.household,
        consumer=consent.consumer,
        purpose=consent.purpose,
        expire_time=consent.expire_time.ToDatetime(tzinfo=UTC),
        state=_STATE_NAMES[consent.state],  # type: ignore[arg-type]
        granted_by=consent.granted_by,
        create_time=consent.create_time.ToDatetime(tzinfo=UTC),
        revoke_time=(
            consent.revoke_time.ToDatetime(tzinfo=UTC) if consent.HasField("revoke_time") else None
        ),
    )


def _policy_name(tenant: str, policy: str) -> str:
    return f"{parent(tenant)}/creditPolicies/{policy}"


def _consent_name(tenant: str, consent: str) -> str:
    return f"{parent(tenant)}/creditConsents/{consent}"


@router.post(
    "/creditPolicies",
    status_code=201,
    response_model=CreditPolicyOut,
    summary="Declare the node's credit policy",
)
@calls(SERVICE, "CreateCreditPolicy")
async def create_credit_policy(
    tenant: TenantId, body: CreditPolicyCreate, request: Request, response: Response, who: Who
) -> CreditPolicyOut:
    """It scores the households of the node and its subtree where no nearer node
    declares one; a node holds one policy (409 for the same id, 400 for another)."""
    created = await call(
        request.app.state.upstreams.credit.CreateCreditPolicy(
            pb.CreateCreditPolicyRequest(
                parent=parent(tenant),
                credit_policy_id=body.id,
                credit_policy=pb.CreditPolicy(
                    display_name=body.display_name,
                    window_days=body.window_days,
                    base_score=body.base_score,
                    points_weight=body.points_weight,
                    deed_weight=body.deed_weight,
                    bands=[
                        pb.CreditPolicy.Band(band=b.band, min_score=b.min_score) for b in body.bands
                    ],
                ),
            ),
            metadata=call_metadata(who),
        ),
        strip_prefix="credit_policy.",
    )
    response.headers["Location"] = rest_path(created.name)
    return policy_out(created)


@router.get("/creditPolicies", response_model=CreditPolicyList, summary="Policies that apply")
@calls(SERVICE, "ListCreditPolicies")
async def list_credit_policies(tenant: TenantId, request: Request, who: Who) -> CreditPolicyList:
    listed = await call(
        request.app.state.upstreams.credit.ListCreditPolicies(
            pb.ListCreditPoliciesRequest(parent=parent(tenant)), metadata=call_metadata(who)
        )
    )
    return CreditPolicyList(credit_policies=[policy_out(p) for p in listed.credit_policies])


@router.get(
    "/creditPolicies/{credit_policy}", response_model=CreditPolicyOut, summary="Get a policy"
)
@calls(SERVICE, "GetCreditPolicy")
async def get_credit_policy(
    tenant: TenantId, credit_policy: PolicyId, request: Request, who: Who
) -> CreditPolicyOut:
    found = await call(
        request.app.state.upstreams.credit.GetCreditPolicy(
            pb.GetCreditPolicyRequest(name=_policy_name(tenant, credit_policy)),
            metadata=call_metadata(who),
        )
    )
    return policy_out(found)


@router.delete("/creditPolicies/{credit_policy}", status_code=204, summary="Delete a policy")
@calls(SERVICE, "DeleteCreditPolicy")
async def delete_credit_policy(
    tenant: TenantId, credit_policy: PolicyId, request: Request, who: Who
) -> Response:
    await call(
        request.app.state.upstreams.credit.DeleteCreditPolicy(
            pb.DeleteCreditPolicyRequest(name=_policy_name(tenant, credit_policy)),
            metadata=call_metadata(who),
        )
    )
    return Response(status_code=204)


@router.post(
    "/creditConsents",
    status_code=201,
    response_model=CreditConsentOut,
    summary="Record a household's consent",
)
@calls(SERVICE, "CreateCreditConsent")
async def create_credit_consent(
    tenant: TenantId, body: CreditConsentCreate, request: Request, response: Response, who: Who
) -> CreditConsentOut:
    """The consumer app may read the household's score for the purpose until
    expire_time; a retry with the same request_id answers the first consent."""
    expire = Timestamp()
    expire.FromDatetime(body.expire_time.astimezone(UTC))
    created = await call(
        request.app.state.upstreams.credit.CreateCreditConsent(
            pb.CreateCreditConsentRequest(
                parent=parent(tenant),
                credit_consent=pb.CreditConsent(
                    household=body.household,
                    consumer=body.consumer,
                    purpose=body.purpose,
                    expire_time=expire,
                ),
                request_id=body.request_id,
            ),
            metadata=call_metadata(who),
        ),
        strip_prefix="credit_consent.",
    )
    response.headers["Location"] = rest_path(created.name)
    return consent_out(created)


@router.get("/creditConsents", response_model=CreditConsentList, summary="List consents")
@calls(SERVICE, "ListCreditConsents")
async def list_credit_consents(
    tenant: TenantId,
    request: Request,
    who: Who,
    household: Annotated[
        str | None, query(pb.CreditConsent, "household", description="one household's")
    ] = None,
    consumer: Annotated[
        str | None, query(pb.CreditConsent, "consumer", description="one consumer app's")
    ] = None,
    page_size: PageSize = 50,
    page_token: PageToken = "",
) -> CreditConsentList:
    terms = [
        f'{field} = "{quote(value)}"'
        for field, value in (("household", household), ("consumer", consumer))
        if value
    ]
    listed = await call(
        request.app.state.upstreams.credit.ListCreditConsents(
            pb.ListCreditConsentsRequest(
                parent=parent(tenant),
                page_size=page_size,
                page_token=page_token,
                filter=" AND ".join(terms),
            ),
            metadata=call_metadata(who),
        )
    )
    return CreditConsentList(
        credit_consents=[consent_out(c) for c in listed.credit_consents],
        next_page_token=listed.next_page_token,
    )


@router.get(
    "/creditConsents/{credit_consent}", response_model=CreditConsentOut, summary="Get a consent"
)
@calls(SERVICE, "GetCreditConsent")
async def get_credit_consent(
    tenant: TenantId, credit_consent: ConsentId, request: Request, who: Who
) -> CreditConsentOut:
    found = await call(
        request.app.state.upstreams.credit.GetCreditConsent(
            pb.GetCreditConsentRequest(name=_consent_name(tenant, credit_consent)),
            metadata=call_metadata(who),
        )
    )
    return consent_out(found)


@router.post(
    "/creditConsents/{credit_consent}:revoke",
    response_model=CreditConsentOut,
    summary="Revoke a consent",
)
@calls(SERVICE, "RevokeCreditConsent")
async def revoke_credit_consent(
    tenant: TenantId, credit_consent: ConsentId, request: Request, who: Who
) -> CreditConsentOut:
    """The consumer's next read is refused; revoking twice changes nothing."""
    revoked = await call(
        request.app.state.upstreams.credit.RevokeCreditConsent(
            pb.RevokeCreditConsentRequest(name=_consent_name(tenant, credit_consent)),
            metadata=call_metadata(who),
        )
    )
    return consent_out(revoked)


@router.get(
    "/pointsAccounts/{points_account}/creditScore",
    response_model=CreditScoreOut,
    summary="A household's credit score, under its consent",
)
@calls(SERVICE, "GetCreditScore")
async def get_credit_score(
    tenant: TenantId,
    points_account: AccountId,
    request: Request,
    who: Who,
    purpose: Annotated[
        str,
        query(
            pb.GetCreditScoreRequest,
            "purpose",
            description="why the score is read; the household's consent names it",
        ),
    ],
) -> CreditScoreOut:
    """403 (CONSENT_REQUIRED) unless the household consented to this app and purpose."""
    score = await call(
        request.app.state.upstreams.credit.GetCreditScore(
            pb.GetCreditScoreRequest(
                name=f"{parent(tenant)}/pointsAccounts/{points_account}/creditScore",
                purpose=purpose,
            ),
            metadata=call_metadata(who),
        )
    )
    return CreditScoreOut(
        name=score.name,
        household=score.household,
        display_name=score.display_name,
        score=score.score,
        band=score.band,
        points_earned=score.points_earned,
        deeds=score.deeds,
        window_start=score.window_start.ToDatetime(tzinfo=UTC),
        policy=score.policy,
        consent=score.consent,
        compute_time=score.compute_time.ToDatetime(tzinfo=UTC),
    )
