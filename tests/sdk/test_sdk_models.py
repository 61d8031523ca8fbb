"""The SDK's models stay true to the gateway's OpenAPI document: every field a model
declares is in the schema it mirrors, and every field the schema requires is declared."""

from __future__ import annotations

from typing import Any

import pytest
from grassroots_sdk import models

from gateway.app import create_app
from gateway.settings import GatewaySettings
from services.kit.components import NAMES


@pytest.fixture(scope="module")
def schemas() -> dict[str, Any]:
    addresses = {f"{name}_address": "127.0.0.1:1" for name in NAMES}
    document = create_app(GatewaySettings(**addresses)).openapi()
    return dict(document["components"]["schemas"])


@pytest.mark.parametrize("model", list(models.SCHEMA), ids=[m.__name__ for m in models.SCHEMA])
def test_a_model_mirrors_its_schema(model: type[models.Model], schemas: dict[str, Any]) -> None:
    schema = schemas[models.SCHEMA[model]]
    properties = set(schema.get("properties", {}))
    declared = set(model.model_fields)
    assert declared <= properties, f"not in {models.SCHEMA[model]}: {declared - properties}"
    required = set(schema.get("required", ()))
    # The SDK reads every field the gateway always sends, except ones it leaves to `extra`.
    optional_here = {
        "Task": {"handler", "passed_by", "transfers", "distance_meters", "media_uris"}
        | {"offer_expire_time", "update_time", "accept_time", "start_time"},
        "Layer": {"create_time", "update_time"},
        "LedgerEntry": {"rule", "actor"},
        "FormField": {"minimum", "maximum", "max_length"},
    }.get(model.__name__, set())
    missing = required - declared - optional_here
    assert not missing, f"{model.__name__} lacks required fields of its schema: {missing}"


def test_the_event_stream_and_lists_name_their_items_as_the_gateway_does(
    schemas: dict[str, Any],
) -> None:
    """The page keys the SDK reads (`events`, `tasks`, ...) are the list schemas' own."""
    for schema, key in {
        "EventList": "events",
        "TaskList": "tasks",
        "LayerList": "layers",
        "PointsAccountList": "points_accounts",
        "LedgerEntryList": "ledger_entries",
        "FormRecordList": "records",
        "FormList": "forms",
    }.items():
        assert key in schemas[schema]["properties"], schema
