"""The credit tables as both stores write them: columns, statements, row mapping.

Statements use `?` placeholders and are rendered per backend by `services.kit.sqldialect`.
Times are microseconds since the epoch (a consent's revoke_us is 0 until revoked);
a policy's bands are a JSON list of [band, min_score].
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from services.empower.domain.credit_model import Band, Consent, Policy
from services.empower.domain.people_model import from_us, to_us
from services.kit.sqldialect import in_subtree as in_subtree

POLICY_COLUMNS = (
    "id, tenant, display_name, window_days, base_score, points_weight, deed_weight, "
    "bands_json, create_us"
)
CONSENT_COLUMNS = (
    "id, tenant, household, consumer, purpose, expire_us, granted_by, request_id, "
    "create_us, revoke_us"
)

# One policy per tenant: a second one is not inserted and the first is read back.
INSERT_POLICY = (
    f"INSERT INTO credit_policies ({POLICY_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (tenant) DO NOTHING"
)
POLICY_OF_TENANT = f"SELECT {POLICY_COLUMNS} FROM credit_policies WHERE tenant = ?"
GET_POLICY = f"SELECT {POLICY_COLUMNS} FROM credit_policies WHERE tenant = ? AND id = ?"
POLICIES_OF = f"SELECT {POLICY_COLUMNS} FROM credit_policies WHERE tenant IN ({{marks}})"
DELETE_POLICY = "DELETE FROM credit_policies WHERE tenant = ? AND id = ?"
INSERT_CONSENT = (
    f"INSERT INTO credit_consents ({CONSENT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (tenant, request_id) DO NOTHING"
)
CONSENT_OF_REQUEST = (
    f"SELECT {CONSENT_COLUMNS} FROM credit_consents WHERE tenant = ? AND request_id = ?"
)
GET_CONSENT = f"SELECT {CONSENT_COLUMNS} FROM credit_consents WHERE id = ?"
LIST_CONSENTS = f"SELECT {CONSENT_COLUMNS} FROM credit_consents WHERE "
REVOKE_CONSENT = "UPDATE credit_consents SET revoke_us = ? WHERE id = ? AND revoke_us = 0"
CONSENT_IN_FORCE = (
    f"SELECT {CONSENT_COLUMNS} FROM credit_consents WHERE household = ? AND consumer = ? "
    "AND purpose = ? AND revoke_us = 0 AND expire_us > ?"
)

Row = Mapping[str, Any]


def policy_values(policy: Policy) -> tuple[object, ...]:
    return (
        policy.id,
        policy.tenant,
        policy.display_name,
        policy.window_days,
        policy.base_score,
        policy.points_weight,
        policy.deed_weight,
        json.dumps([[b.band, b.min_score] for b in policy.bands], ensure_ascii=False),
        to_us(policy.create_time),
    )


def row_to_policy(row: Row) -> Policy:
    return Policy(
        id=row["id"],
        tenant=row["tenant"],
        display_name=row["display_name"],
        window_days=int(row["window_days"]),
        base_score=int(row["base_score"]),
        points_weight=int(row["points_weight"]),
        deed_weight=int(row["deed_weight"]),
        bands=tuple(Band(str(b), int(m)) for b, m in json.loads(row["bands_json"])),
        create_time=from_us(row["create_us"]),
    )


def consent_values(consent: Consent) -> tuple[object, ...]:
    return (
        consent.id,
        consent.tenant,
        consent.household,
        consent.consumer,
        consent.purpose,
        to_us(consent.expire_time),
        consent.granted_by,
        consent.request_id,
        to_us(consent.create_time),
        to_us(consent.revoke_time) if consent.revoke_time else 0,
    )


def row_to_consent(row: Row) -> Consent:
    revoked = int(row["revoke_us"])
    return Consent(
        id=row["id"],
        tenant=row["tenant"],
        household=row["household"],
        consumer=row["consumer"],
        purpose=row["purpose"],
        expire_time=from_us(row["expire_us"]),
        granted_by=row["granted_by"],
        request_id=row["request_id"],
        create_time=from_us(row["create_us"]),
        revoke_time=from_us(revoked) if revoked else None,
    )


def list_clauses(
    subtree: str, household: str, consumer: str, after_id: str | None
) -> tuple[str, list[object]]:
    where, args = in_subtree(subtree)
    clauses: list[str] = [where]
    params: list[object] = [*args]
    for column, value in (("household", household), ("consumer", consumer)):
        if value:
            clauses.append(f"{column} = ?")
            params.append(value)
    if after_id is not None:
        clauses.append("id > ?")
        params.append(after_id)
    return f"{LIST_CONSENTS}{' AND '.join(clauses)} ORDER BY id LIMIT ?", params
