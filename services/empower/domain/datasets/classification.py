"""What each classification level allows, in one table."""

from __future__ import annotations

from dataclasses import dataclass

from services.empower.domain.datasets.model import Classification
from services.kit.masking import PEOPLE_SCOPE, SENSITIVE_SCOPE

READ_SCOPE = "datasets:read"
PUBLISH_SCOPE = "datasets:publish"


@dataclass(frozen=True)
class Rule:
    # Scopes a subscriber needs besides datasets:read.
    subscribe_scopes: frozenset[str]
    # Whether the schema may hold personal fields at all.
    personal_fields: bool


RULES: dict[Classification, Rule] = {
    Classification.PUBLIC: Rule(frozenset(), personal_fields=False),
    Classification.INTERNAL: Rule(frozenset(), personal_fields=True),
    Classification.SENSITIVE: Rule(frozenset({PEOPLE_SCOPE}), personal_fields=True),
    Classification.CORE: Rule(frozenset({PEOPLE_SCOPE, SENSITIVE_SCOPE}), personal_fields=True),
}

# Personal fields are shown in full only to holders of this scope who state a purpose.
UNMASK_SCOPE = SENSITIVE_SCOPE
