"""JSON shapes of village credit: policies, consents and scores.

Bounds come from the contract (`limited`); the service checks the rest (bands falling,
the consumer registered, the expiry within three years) and names the field at fault.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from gateway.schemas.common import Rfc3339Time
from gateway.schemas.contract import limited
from grassroots.empower.v1 import credit_service_pb2 as pb

ConsentStateName = Literal["active", "revoked", "expired"]


class CreditBand(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    band: str = limited(pb.CreditPolicy.Band, "band")
    min_score: int = limited(pb.CreditPolicy.Band, "min_score")


class CreditPolicyCreate(BaseModel):
    """score = base_score + points_weight x points earned + deed_weight x deeds, over
    window_days, clamped to 0..1000; bands highest first, the last from 0."""

    model_config = ConfigDict(extra="forbid", strict=True)

    id: str = limited(pb.CreateCreditPolicyRequest, "credit_policy_id")
    display_name: str = limited(pb.CreditPolicy, "display_name", "")
    window_days: int = limited(pb.CreditPolicy, "window_days", 365)
    base_score: int = limited(pb.CreditPolicy, "base_score")
    points_weight: int = limited(pb.CreditPolicy, "points_weight")
    deed_weight: int = limited(pb.CreditPolicy, "deed_weight")
    bands: list[CreditBand] = limited(pb.CreditPolicy, "bands")


class CreditPolicyOut(BaseModel):
    id: str
    name: str
    display_name: str
    window_days: int
    base_score: int
    points_weight: int
    deed_weight: int
    bands: list[CreditBand]
    create_time: datetime


class CreditPolicyList(BaseModel):
    credit_policies: list[CreditPolicyOut] = Field(
        description="the node's and its ancestors' the caller may see; the nearest last"
    )


class CreditConsentCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    household: str = limited(
        pb.CreditConsent, "household", description="the household's points account"
    )
    consumer: str = limited(
        pb.CreditConsent, "consumer", description="the app that may read: tenants/{t}/apps/{a}"
    )
    purpose: str = limited(pb.CreditConsent, "purpose", examples=["loan_assessment"])
    expire_time: Rfc3339Time
    request_id: str = limited(pb.CreateCreditConsentRequest, "request_id")


class CreditConsentOut(BaseModel):
    id: str
    name: str
    household: str
    consumer: str
    purpose: str
    expire_time: datetime
    state: ConsentStateName
    granted_by: str
    create_time: datetime
    revoke_time: datetime | None


class CreditConsentList(BaseModel):
    credit_consents: list[CreditConsentOut]
    next_page_token: str


class CreditScoreOut(BaseModel):
    name: str
    household: str
    display_name: str = Field(description="masked unless the caller holds people:read_sensitive")
    score: int
    band: str
    points_earned: int
    deeds: int
    window_start: datetime
    policy: str
    consent: str = Field(description="the consent the read was made under")
    compute_time: datetime
