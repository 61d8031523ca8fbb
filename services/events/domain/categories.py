"""Event categories: built-ins every tenant sees, and each level's own definitions.

A category code is dotted (`area.topic`) so routing rules can match a prefix. Levels of
the tenant tree add categories or override inherited ones for their subtree.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from services.kit import tenancy
from services.kit.errors import FieldViolation, InvalidArgument


@dataclass(frozen=True)
class Category:
    code: str
    name: str
    default_severity: int
    sla_minutes: int
    duplicate_radius_m: float = 50.0
    duplicate_window_minutes: int = 120
    # Anyone may read its events (without personal fields): things in public space.
    public: bool = False
    # Joint handling: the codes of the departments' parts of an application.
    joint_categories: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        # Definitions read back from JSON carry lists; keep the value hashable.
        object.__setattr__(self, "joint_categories", tuple(self.joint_categories))


# Reports about public space are public; reports about homes, people and disputes are not.
DEFAULT_CATEGORIES: dict[str, Category] = {
    c.code: c
    for c in (
        Category("safety.fire_hazard", "Fire hazard", 3, 30),
        Category("safety.smoke_alarm", "Smoke alarm", 4, 5, 20.0, 30),
        Category("safety.flooding", "Waterlogging or flooding", 4, 30, public=True),
        Category("safety.ebike_charging", "E-bike charging indoors", 3, 120),
        Category("environment.garbage", "Garbage or littering", 2, 1440, 50.0, 1440, public=True),
        Category("environment.sewage", "Sewage or blocked drain", 2, 1440, public=True),
        Category("environment.living", "Rural living environment", 2, 2880, public=True),
        Category("construction.illegal", "Illegal construction", 3, 2880),
        Category("roads.damage", "Damaged road or path", 2, 2880, 30.0, 10080, public=True),
        Category("public.facility", "Broken public facility", 2, 2880, public=True),
        Category("neighbourhood.dispute", "Neighbour dispute", 2, 4320),
        Category("care.elderly_welfare", "Welfare check for an elderly resident", 4, 60),
    )
}


PLATFORM = ""  # the built-in categories belong to no tenant and reach every one


def check_category(category: Category, prefix: str = "category.") -> None:
    """A definition a village can rely on: a code, a name and a severity.

    The code's shape (dotted lower-case words), lengths and ranges (SLA, duplicate
    radius and window) are the contract's (`(grassroots.type.v1.limits)` on
    Category, ADR 22).
    """
    violations: list[FieldViolation] = []
    if not category.code:
        violations.append(
            FieldViolation(f"{prefix}code", "dotted lower-case words, e.g. 'safety.smoke_alarm'")
        )
    if not category.name.strip():
        violations.append(FieldViolation(f"{prefix}display_name", "is required"))
    if not category.default_severity:
        violations.append(FieldViolation(f"{prefix}default_severity", "is required: 1 to 5"))
    if category.joint_categories:
        if len(set(category.joint_categories)) != len(category.joint_categories):
            violations.append(
                FieldViolation(f"{prefix}joint_categories", "names a part more than once")
            )
        if category.code in category.joint_categories:
            violations.append(
                FieldViolation(f"{prefix}joint_categories", "an application is not its own part")
            )
        if category.duplicate_radius_m:
            violations.append(
                FieldViolation(
                    f"{prefix}duplicate_radius_meters",
                    "must be 0 for a joint application: each applicant's is their own",
                )
            )
    if violations:
        raise InvalidArgument(violations)


class CategoryCatalog:
    """The category tree: built-ins, then each level's own, the nearest level winning.

    A town defines `safety.smoke_alarm` with a 3-minute SLA for its villages; a village
    may add its own categories or tighten an inherited one, and sees only its own path.
    """

    def __init__(self, definitions: Iterable[tuple[str, Category]] = ()) -> None:
        self._by_tenant: dict[str, dict[str, Category]] = {}
        self.reset(definitions)

    def reset(self, definitions: Iterable[tuple[str, Category]]) -> None:
        """The built-ins and exactly these definitions (swapped in at once for readers)."""
        by_tenant: dict[str, dict[str, Category]] = {PLATFORM: dict(DEFAULT_CATEGORIES)}
        for tenant, category in definitions:
            by_tenant.setdefault(tenant, {})[category.code] = category
        self._by_tenant = by_tenant

    def put(self, tenant: str, category: Category) -> None:
        self._by_tenant.setdefault(tenant, {})[category.code] = category

    def defined_at(self, tenant: str, code: str) -> str | None:
        """Where the definition that `tenant` sees comes from (None: nowhere)."""
        for level in reversed(_levels(tenant)):
            if code in self._by_tenant.get(level, {}):
                return level
        return None

    def effective(self, tenant: str) -> dict[str, Category]:
        result: dict[str, Category] = {}
        for level in _levels(tenant):
            result.update(self._by_tenant.get(level, {}))
        return result

    def public_codes(self, tenant: str) -> frozenset[str]:
        """Codes public somewhere in `tenant`'s subtree (each event is checked again
        against its own village's definition)."""
        levels = [t for t in self._by_tenant if t and tenancy.contains(tenant, t)]
        codes = {c for c, cat in self.effective(tenant).items() if cat.public}
        for level in levels:
            codes |= {c for c, cat in self._by_tenant[level].items() if cat.public}
        return frozenset(codes)

    def get(self, tenant: str, code: str) -> Category | None:
        level = self.defined_at(tenant, code)
        return None if level is None else self._by_tenant[level][code]


def _levels(tenant: str) -> list[str]:
    """'sh/jd/at' -> ['', 'sh', 'sh/jd', 'sh/jd/at']."""
    parts = tenant.split("/") if tenant else []
    return [PLATFORM] + ["/".join(parts[: i + 1]) for i in range(len(parts))]
