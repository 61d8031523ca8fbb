"""The scenario composer's Python API, for the CLI, the SDK, the demo and tests.

from scenarios.composer import Composer, catalog
async with Composer.connect(addresses) as composer:
    plan = await composer.plan("sh/jiading/anting/xingming", catalog.get("fire-smoke"))
    print(plan.render())
    await composer.apply("sh/jiading/anting/xingming", catalog.get("fire-smoke"))
"""

from scenarios.composer import catalog
from scenarios.composer.composer import (
    COMPOSER_SCOPES,
    Applied,
    ApplyError,
    Composer,
    Installed,
    NotAVillage,
    composer_principal,
)
from scenarios.composer.manifest import Manifest, ManifestError, Setting, load, parse
from scenarios.composer.plan import Action, Op, Plan, PlanBlocked, PlanChanged, Recorded

__all__ = [
    "COMPOSER_SCOPES",
    "Action",
    "Applied",
    "ApplyError",
    "Composer",
    "Installed",
    "Manifest",
    "ManifestError",
    "NotAVillage",
    "Op",
    "Plan",
    "PlanBlocked",
    "PlanChanged",
    "Recorded",
    "Setting",
    "catalog",
    "composer_principal",
    "load",
    "parse",
]
