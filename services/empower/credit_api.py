"""gRPC adapter of village credit: messages in, domain calls, messages out.

Consent, tenancy, the scoring rule and the audit entries are decided in
`services.empower.domain.credit`.
"""

from __future__ import annotations

from datetime import UTC, datetime

from google.protobuf import empty_pb2

from grassroots.empower.v1 import credit_service_pb2 as pb
from grassroots.empower.v1 import credit_service_pb2_grpc as pb_grpc
from services.empower.domain.credit import CreditDesk
from services.empower.domain.credit_model import (
    CONSENTS,
    POLICIES,
    Band,
    Consent,
    ConsentState,
    Policy,
    Score,
    parse_named,
    parse_score_name,
)
from services.empower.domain.identity_ports import IdentityStore
from services.kit import tenancy
from services.kit.context import require_principal
from services.kit.timestamps import to_timestamp

_STATES = {
    ConsentState.ACTIVE: pb.CreditConsent.STATE_ACTIVE,
    ConsentState.REVOKED: pb.CreditConsent.STATE_REVOKED,
    ConsentState.EXPIRED: pb.CreditConsent.STATE_EXPIRED,
}


def policy_to_proto(policy: Policy) -> pb.CreditPolicy:
    return pb.CreditPolicy(
        name=policy.resource_name,
        display_name=policy.display_name,
        window_days=policy.window_days,
        base_score=policy.base_score,
        points_weight=policy.points_weight,
        deed_weight=policy.deed_weight,
        bands=[pb.CreditPolicy.Band(band=b.band, min_score=b.min_score) for b in policy.bands],
        create_time=to_timestamp(policy.create_time),
    )


def consent_to_proto(consent: Consent, now: datetime) -> pb.CreditConsent:
    return pb.CreditConsent(
        name=consent.resource_name,
        household=consent.household,
        consumer=consent.consumer,
        purpose=consent.purpose,
        expire_time=to_timestamp(consent.expire_time),
        state=_STATES[consent.state(now)],
        granted_by=consent.granted_by,
        create_time=to_timestamp(consent.create_time),
        revoke_time=to_timestamp(consent.revoke_time),
    )


def score_to_proto(score: Score) -> pb.CreditScore:
    return pb.CreditScore(
        name=score.resource_name,
        household=score.household,
        display_name=score.display_name,
        score=score.score,
        band=score.band,
        points_earned=score.points_earned,
        deeds=score.deeds,
        window_start=to_timestamp(score.window_start),
        policy=score.policy,
        consent=score.consent,
        compute_time=to_timestamp(score.compute_time),
    )


class IdentityApps:
    """ConsumerApps over the identity store: whether a consent's consumer is registered."""

    def __init__(self, identity: IdentityStore) -> None:
        self.identity = identity

    async def app_exists(self, tenant: str, app_id: str) -> bool:
        found = await self.identity.get_app(tenant, app_id)
        return found is not None and found.tenant == tenant


class CreditServicer(pb_grpc.CreditServiceServicer):
    def __init__(self, desk: CreditDesk) -> None:
        self.desk = desk

    async def CreateCreditPolicy(
        self, request: pb.CreateCreditPolicyRequest, context: object
    ) -> pb.CreditPolicy:
        given = request.credit_policy
        policy = await self.desk.create_policy(
            require_principal(),
            tenancy.parse_parent(request.parent),
            request.credit_policy_id,
            display_name=given.display_name,
            window_days=given.window_days,
            base_score=given.base_score,
            points_weight=given.points_weight,
            deed_weight=given.deed_weight,
            bands=[Band(b.band, b.min_score) for b in given.bands],
        )
        return policy_to_proto(policy)

    async def GetCreditPolicy(
        self, request: pb.GetCreditPolicyRequest, context: object
    ) -> pb.CreditPolicy:
        tenant, policy_id = parse_named(request.name, POLICIES)
        return policy_to_proto(await self.desk.get_policy(require_principal(), tenant, policy_id))

    async def ListCreditPolicies(
        self, request: pb.ListCreditPoliciesRequest, context: object
    ) -> pb.ListCreditPoliciesResponse:
        found = await self.desk.list_policies(
            require_principal(), tenancy.parse_parent(request.parent)
        )
        return pb.ListCreditPoliciesResponse(credit_policies=[policy_to_proto(p) for p in found])

    async def DeleteCreditPolicy(
        self, request: pb.DeleteCreditPolicyRequest, context: object
    ) -> empty_pb2.Empty:
        tenant, policy_id = parse_named(request.name, POLICIES)
        await self.desk.delete_policy(require_principal(), tenant, policy_id)
        return empty_pb2.Empty()

    async def CreateCreditConsent(
        self, request: pb.CreateCreditConsentRequest, context: object
    ) -> pb.CreditConsent:
        given = request.credit_consent
        consent = await self.desk.grant(
            require_principal(),
            tenancy.parse_parent(request.parent),
            household=given.household,
            consumer=given.consumer,
            purpose=given.purpose,
            expire_time=(
                given.expire_time.ToDatetime(tzinfo=UTC) if given.HasField("expire_time") else None
            ),
            request_id=request.request_id,
        )
        return consent_to_proto(consent, self.desk.now())

    async def GetCreditConsent(
        self, request: pb.GetCreditConsentRequest, context: object
    ) -> pb.CreditConsent:
        tenant, consent_id = parse_named(request.name, CONSENTS)
        found = await self.desk.get_consent(require_principal(), tenant, consent_id)
        return consent_to_proto(found, self.desk.now())

    async def ListCreditConsents(
        self, request: pb.ListCreditConsentsRequest, context: object
    ) -> pb.ListCreditConsentsResponse:
        found, token = await self.desk.list_consents(
            require_principal(),
            tenancy.parse_parent(request.parent),
            request.filter,
            request.page_size,
            request.page_token,
        )
        return pb.ListCreditConsentsResponse(
            credit_consents=[consent_to_proto(c, self.desk.now()) for c in found],
            next_page_token=token,
        )

    async def RevokeCreditConsent(
        self, request: pb.RevokeCreditConsentRequest, context: object
    ) -> pb.CreditConsent:
        tenant, consent_id = parse_named(request.name, CONSENTS)
        revoked = await self.desk.revoke(require_principal(), tenant, consent_id)
        return consent_to_proto(revoked, self.desk.now())

    async def GetCreditScore(
        self, request: pb.GetCreditScoreRequest, context: object
    ) -> pb.CreditScore:
        tenant, account_id = parse_score_name(request.name)
        return score_to_proto(
            await self.desk.score(require_principal(), tenant, account_id, request.purpose)
        )
