"""Shapes of the scenario routes: plan, install and uninstall a template in a village."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from scenarios.composer.manifest import schema

# A scenario's id is bounded where manifests are: by the manifest schema's `id`.
SCENARIO_ID_PATTERN: str = schema()["properties"]["id"]["pattern"]
Override = int | float | bool | str


# The `digest` of a plan the caller checked, sent back with the apply.
PlanDigest = Annotated[
    str,
    Field(
        pattern="^([0-9a-f]{16})?$",
        examples=["3f9a0c2e7b1d4a56"],
        description="the `digest` of the plan the caller checked: when the plan worked out "
        "now differs (the village or the template moved), 409 PLAN_CHANGED and nothing is done",
    ),
]


class ScenarioIn(BaseModel):
    """A scenario template of the shelf and, optionally, the village's settings."""

    model_config = ConfigDict(extra="forbid", strict=True)

    scenario: str = Field(
        pattern=SCENARIO_ID_PATTERN, examples=["fire-smoke"], description="the template's id"
    )
    overrides: dict[str, Override] | None = Field(
        None,
        max_length=100,
        examples=[{"radius_m": 300}],
        description="settings the village chooses, merged with the ones it chose before "
        "(omitted: keep those; {}: the template's defaults; see reset)",
    )
    reset: bool = Field(
        False,
        description="forget the village's earlier overrides: the template's defaults, then "
        "`overrides`",
    )
    allow_downgrade: bool = Field(
        False, description="allow a template older than the version installed"
    )
    plan_digest: PlanDigest = ""


class ScenarioUninstallIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    scenario: str = Field(
        pattern=SCENARIO_ID_PATTERN, examples=["fire-smoke"], description="the template's id"
    )
    plan_digest: PlanDigest = ""


class PlannedActionOut(BaseModel):
    op: Literal["create", "update", "replace", "delete", "release", "keep"]
    symbol: str = Field(description="+ create, ~ change, -/+ replace, - delete, . release, = same")
    kind: str = Field(examples=["events.categories"])
    key: str
    name: str = Field(description="the resource's name; empty for one the service names later")
    fields: list[str] = Field(description="what differs, for a change or a replacement")
    note: str


class ScenarioPlanOut(BaseModel):
    village: str
    scenario: str
    from_version: str = Field(description="the version installed; empty when none is")
    to_version: str = Field(description="the version applying would install; empty to uninstall")
    settings: dict[str, Override]
    actions: list[PlannedActionOut]
    counts: dict[str, int] = Field(
        description="actions per op, and `shared`: the releases other installed scenarios "
        "still use (the rest are gone already, or not the scenario's to delete)"
    )
    warnings: list[str]
    blockers: list[str] = Field(description="why the plan cannot be applied, if it cannot")
    empty: bool = Field(description="applying it would change nothing")
    text: str = Field(description="the plan as a reader checks it, like `terraform plan`")
    digest: str = Field(
        description="what applying would do, in 16 hex digits: pass it as `plan_digest` to "
        "apply exactly this plan"
    )


class ScenarioAppliedOut(BaseModel):
    state: Literal["complete", "incomplete", "removed"]
    installation: str = Field(description="the install record's name; empty once uninstalled")
    done: int = Field(description="steps taken")
    plan: ScenarioPlanOut
