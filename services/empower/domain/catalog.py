"""The supermarket's shelf: components, scenario templates and datasets, and who uses them.

Villages browse one list. Components come from the platform's list of components
(`services.kit.components`) with what the running services say about themselves:
their gRPC services and methods by reflection, their health, and their REST routes
from the gateway's OpenAPI document. Scenario templates come from the manifests in
`scenarios/`, datasets from those published at the browsing node and above it.
What the components say is cached for a few seconds, so browsing does not probe
five services per page.

A village installing a scenario is recorded here; subscriptions to datasets are the
datasets' own records. A district's adoption view joins both with the calls each
village made to each component, which only the gateway counts.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from enum import StrEnum
from typing import Protocol

from services.empower.domain.datasets.classification import READ_SCOPE as DATASETS_READ
from services.empower.domain.datasets.model import Dataset, Subscription
from services.empower.domain.model import Tenant
from services.kit import paging, tenancy
from services.kit.components import Component
from services.kit.errors import AlreadyExists, InvalidArgument, NotFound, PermissionDenied
from services.kit.filtering import parse_terms
from services.kit.ids import new_id
from services.kit.principal import Principal

CATALOG_SCOPE = "catalog:read"
INSTALL_SCOPE = "scenarios:install"
INSTALLATION_PREFIX = "ins"
FILTERABLE = {"kind": ("=",), "area": ("=",)}
_ITEM = re.compile(r"^catalogItems/([a-z0-9][a-z0-9-]{0,127})\Z")


class ItemKind(StrEnum):
    COMPONENT = "component"
    SCENARIO = "scenario"
    DATASET = "dataset"


@dataclass(frozen=True)
class GrpcService:
    name: str
    methods: tuple[str, ...]


@dataclass(frozen=True)
class ComponentFacts:
    """What a running component says about itself."""

    services: tuple[GrpcService, ...] = ()
    health: str = "UNAVAILABLE"


@dataclass(frozen=True)
class ScenarioTemplate:
    template_id: str
    display_name: str
    description: str = ""
    version: str = ""
    area: str = ""
    components: tuple[str, ...] = ()


@dataclass(frozen=True)
class CatalogItem:
    item_id: str
    kind: ItemKind
    display_name: str
    description: str = ""
    version: str = ""
    area: str = ""
    grpc_services: tuple[GrpcService, ...] = ()
    rest_routes: tuple[str, ...] = ()
    docs_uri: str = ""
    health: str = ""
    resource: str = ""
    components: tuple[str, ...] = ()
    classification: str = ""

    @property
    def resource_name(self) -> str:
        return f"catalogItems/{self.item_id}"

    def words(self) -> str:
        return " ".join(
            (self.item_id, self.display_name, self.description, self.area, *self.components)
        ).casefold()


class InstallState(StrEnum):
    UNSPECIFIED = ""  # a bare record, made without the composer: counts as complete
    COMPLETE = "complete"
    INCOMPLETE = "incomplete"


@dataclass(frozen=True)
class InstalledResource:
    """A component's resource a scenario put in place (owned) or found there (not owned)."""

    name: str
    kind: str
    key: str
    digest: str = ""
    owned: bool = True


@dataclass(frozen=True)
class InstallDetails:
    """What the scenario composer records about an install: the version applied, whether
    it finished, the village's settings and the resources it owns or shares (ADR 26)."""

    version: str = ""
    state: InstallState = InstallState.UNSPECIFIED
    settings: Mapping[str, object] = field(default_factory=dict)
    resources: tuple[InstalledResource, ...] = ()


UPDATABLE = ("version", "state", "settings", "resources")
MAX_RESOURCES = 1000


@dataclass(frozen=True)
class Installation:
    tenant: str
    installation_id: str
    catalog_item: str
    installer: str
    create_time: datetime
    details: InstallDetails = field(default_factory=InstallDetails)
    update_time: datetime | None = None

    @property
    def resource_name(self) -> str:
        return f"{tenancy.tenant_name(self.tenant)}/installations/{self.installation_id}"


@dataclass
class NodeAdoption:
    tenant: str
    datasets: list[str] = field(default_factory=list)
    scenarios: list[str] = field(default_factory=list)
    calls: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Adoption:
    tenant: str
    nodes: list[NodeAdoption]
    calls_available: bool


class ComponentProbe(Protocol):
    async def describe(self, component: str) -> ComponentFacts:
        """Services, methods and health of a running component (UNAVAILABLE if down)."""
        ...


class RestDirectory(Protocol):
    async def routes(self) -> Mapping[str, Sequence[str]] | None:
        """REST routes per component ("GET /v1/..."), or None when unknown."""
        ...

    def docs_uri(self, component: str) -> str: ...


class ScenarioSource(Protocol):
    def templates(self) -> Sequence[ScenarioTemplate]: ...


class UsageSource(Protocol):
    async def calls(self) -> Mapping[tuple[str, str], int] | None:
        """Calls per (tenant path, component) since the gateway started; None if unknown."""
        ...


class ShelfStore(Protocol):
    async def list_datasets(
        self, tenants: Sequence[str], limit: int, after: str | None
    ) -> list[Dataset]: ...

    async def list_subscriptions(
        self, subtree: str, limit: int, after: str | None
    ) -> list[Subscription]: ...

    async def create_installation(self, installation: Installation) -> None:
        """AlreadyExists when the node already installed that template."""
        ...

    async def list_installations(
        self, subtree: str, limit: int, after: str | None
    ) -> list[Installation]: ...

    async def get_installation(self, subtree: str, installation_id: str) -> Installation | None: ...

    async def update_installation(self, installation: Installation) -> bool:
        """Store the new details and update time; False when it is gone."""
        ...

    async def delete_installation(self, subtree: str, installation_id: str) -> bool: ...


def check_details(details: InstallDetails, prefix: str = "installation") -> None:
    """Bounds of what a record holds, named by field."""
    if len(details.version) > 64:
        raise InvalidArgument.field(f"{prefix}.version", "is longer than 64 characters")
    if len(details.resources) > MAX_RESOURCES:
        raise InvalidArgument.field(f"{prefix}.resources", f"holds more than {MAX_RESOURCES}")
    for i, r in enumerate(details.resources):
        limits = (("name", r.name, 300), ("kind", r.kind, 64), ("key", r.key, 200))
        for name, value, limit in limits:
            if not value or len(value) > limit:
                raise InvalidArgument.field(
                    f"{prefix}.resources[{i}].{name}", f"must be 1 to {limit} characters"
                )


def _installation_name(name: str, field_name: str = "name") -> tuple[str, str]:
    """`tenants/{tenant}/installations/{id}` -> (tenant path, id); 400 naming the field."""
    tenant, installation_id = tenancy.parse_child_name(name, "installations", field_name)
    if tenant is None:
        raise InvalidArgument.field(field_name, "names one village, not the wildcard '-'")
    return tenant, installation_id


def item_id_of(kind: ItemKind, *parts: str) -> str:
    return "-".join((kind.value, *(p.replace("/", "-") for p in parts)))


def _line_of(path: str) -> list[str]:
    parts = path.split("/")
    return ["/".join(parts[: i + 1]) for i in range(len(parts))]


class TenantNodes(Protocol):
    """The tenant tree: an installation is recorded only in a node that exists."""

    async def get_tenant(self, path: str) -> Tenant | None: ...


class Catalog:
    """The shelf, its search, installations and the adoption view."""

    def __init__(
        self,
        components: Sequence[Component],
        probe: ComponentProbe,
        rest: RestDirectory,
        scenarios: ScenarioSource,
        store: ShelfStore,
        usage: UsageSource,
        *,
        tenants: TenantNodes,
        version: str = "",
        cache_seconds: float = 15.0,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.components = tuple(components)
        self.probe = probe
        self.rest = rest
        self.scenarios = scenarios
        self.store = store
        self.usage = usage
        self.tenants = tenants
        self.version = version
        self.cache_seconds = cache_seconds
        self._clock = clock or (lambda: datetime.now(UTC))
        self._cached: tuple[datetime, list[CatalogItem]] | None = None

    # --- browsing -------------------------------------------------------------

    async def component_items(self) -> list[CatalogItem]:
        now = self._clock()
        if self._cached and (now - self._cached[0]).total_seconds() < self.cache_seconds:
            return self._cached[1]
        routes = await self.rest.routes() or {}
        items = []
        for row in self.components:
            facts = await self.probe.describe(row.name)
            items.append(
                CatalogItem(
                    item_id=item_id_of(ItemKind.COMPONENT, row.name),
                    kind=ItemKind.COMPONENT,
                    display_name=row.name,
                    description=row.summary,
                    version=self.version,
                    area="platform",
                    grpc_services=facts.services,
                    rest_routes=tuple(routes.get(row.name, ())),
                    docs_uri=self.rest.docs_uri(row.name),
                    health=facts.health,
                )
            )
        self._cached = (now, items)
        return items

    def scenario_items(self) -> list[CatalogItem]:
        return [
            CatalogItem(
                item_id=item_id_of(ItemKind.SCENARIO, t.template_id),
                kind=ItemKind.SCENARIO,
                display_name=t.display_name,
                description=t.description,
                version=t.version,
                area=t.area,
                components=t.components,
            )
            for t in self.scenarios.templates()
        ]

    async def dataset_items(self, parent: str) -> list[CatalogItem]:
        items: list[CatalogItem] = []
        after: str | None = None
        while True:
            found = await self.store.list_datasets(_line_of(parent), 500, after)
            items += [
                CatalogItem(
                    item_id=item_id_of(ItemKind.DATASET, d.tenant, d.dataset_id),
                    kind=ItemKind.DATASET,
                    display_name=d.display_name,
                    description=d.description,
                    area=d.area,
                    resource=d.resource_name,
                    classification=d.classification.value,
                )
                for d in found
            ]
            if len(found) < 500:
                return items
            after = found[-1].resource_name

    async def list_items(
        self,
        caller: Principal,
        parent: str | None,
        filter_text: str,
        query: str,
        page_size: int,
        page_token: str,
    ) -> tuple[list[CatalogItem], str]:
        """The shelf as the browsing node sees it, searched by text, area and kind."""
        node = parent or caller.tenant
        if not (caller.can_see(node) or tenancy.contains(node, caller.tenant)):
            raise NotFound(f"tenant {tenancy.tenant_name(node)!r} not found")
        kinds: set[ItemKind] = set(ItemKind)
        area = ""
        for term in parse_terms(filter_text, FILTERABLE):
            if term.field == "kind":
                try:
                    kinds &= {ItemKind(term.value)}
                except ValueError:
                    raise InvalidArgument.field(
                        "filter", "kind is component, scenario or dataset"
                    ) from None
            else:
                area = term.value.casefold()
        if len(query) > 200:
            raise InvalidArgument.field("query", "at most 200 characters")
        items: list[CatalogItem] = []
        if ItemKind.COMPONENT in kinds:
            items += await self.component_items()
        if ItemKind.SCENARIO in kinds:
            items += self.scenario_items()
        if ItemKind.DATASET in kinds:
            items += await self.dataset_items(node)
        words = query.casefold().split()
        items = [
            item
            for item in items
            if (not area or item.area.casefold() == area)
            and all(word in item.words() for word in words)
        ]
        size = paging.page_size(page_size)
        fingerprint = ["catalog", node, filter_text, query]
        start = paging.decode_offset(page_token, fingerprint)
        end = start + size
        token = paging.encode_offset(end if end < len(items) else None, fingerprint)
        return items[start:end], token

    # --- installations and adoption -------------------------------------------

    async def install(
        self,
        caller: Principal,
        parent: str,
        item_name: str,
        details: InstallDetails | None = None,
    ) -> Installation:
        if not caller.has_scope(INSTALL_SCOPE):
            raise PermissionDenied(f"installing scenarios needs the scope {INSTALL_SCOPE!r}")
        if not caller.can_see(parent) or await self.tenants.get_tenant(parent) is None:
            raise NotFound(f"tenant {tenancy.tenant_name(parent)!r} not found")
        match = _ITEM.match(item_name)
        known = {item.resource_name for item in self.scenario_items()}
        if not match or item_name not in known:
            raise InvalidArgument.field(
                "installation.catalog_item", "must name a scenario template of the catalog"
            )
        installation = Installation(
            tenant=parent,
            installation_id=new_id(INSTALLATION_PREFIX),
            catalog_item=item_name,
            installer=caller.subject,
            create_time=self._clock(),
            details=details or InstallDetails(),
        )
        check_details(installation.details)
        installation = replace(installation, update_time=installation.create_time)
        try:
            await self.store.create_installation(installation)
        except AlreadyExists:
            raise AlreadyExists(f"{item_name} is already installed in {parent}") from None
        return installation

    async def list_installations(
        self, caller: Principal, parent: str, page_size: int, page_token: str
    ) -> tuple[list[Installation], str]:
        self._require_reader(caller, parent)
        size = paging.page_size(page_size)
        cursor = paging.decode_token(page_token, ["installations", parent])
        after = str(cursor["after"]) if cursor else None
        found = await self.store.list_installations(parent, size + 1, after)
        page = found[:size]
        token = (
            paging.encode_token({"after": page[-1].installation_id}, ["installations", parent])
            if len(found) > size
            else ""
        )
        return page, token

    async def get_installation(self, caller: Principal, name: str) -> Installation:
        if not caller.has_scope(CATALOG_SCOPE):
            raise PermissionDenied(f"reading installations needs the scope {CATALOG_SCOPE!r}")
        return await self._installation(caller, name)

    async def update_installation(
        self, caller: Principal, name: str, details: InstallDetails, fields: Sequence[str] = ()
    ) -> Installation:
        """Replace the named parts of the record (all four when `fields` is empty)."""
        self._require_installer(caller)
        for f in fields:
            if f not in UPDATABLE:
                raise InvalidArgument.field("update_mask", f"{f!r} cannot be changed")
        current = await self._installation(caller, name, "installation.name")
        chosen = set(fields or UPDATABLE)
        merged = InstallDetails(
            **{f: getattr(details if f in chosen else current.details, f) for f in UPDATABLE}
        )
        check_details(merged)
        updated = replace(current, details=merged, update_time=self._clock())
        if not await self.store.update_installation(updated):
            raise NotFound(f"installation {name!r} not found")
        return updated

    async def delete_installation(self, caller: Principal, name: str) -> None:
        self._require_installer(caller)
        current = await self._installation(caller, name)
        if not await self.store.delete_installation(current.tenant, current.installation_id):
            raise NotFound(f"installation {name!r} not found")

    def _require_installer(self, caller: Principal) -> None:
        if not caller.has_scope(INSTALL_SCOPE):
            raise PermissionDenied(f"installing scenarios needs the scope {INSTALL_SCOPE!r}")

    async def _installation(
        self, caller: Principal, name: str, field_name: str = "name"
    ) -> Installation:
        """The caller's installation by name; another subtree's is NOT_FOUND like a missing one."""
        tenant, installation_id = _installation_name(name, field_name)
        found = (
            await self.store.get_installation(caller.tenant, installation_id)
            if caller.can_see(tenant)
            else None
        )
        if found is None or found.tenant != tenant:
            raise NotFound(f"installation {name!r} not found")
        return found

    async def adoption(self, caller: Principal, tenant: str) -> Adoption:
        """Per node of the subtree: datasets subscribed, scenarios installed, calls made."""
        self._require_reader(caller, tenant)
        nodes: dict[str, NodeAdoption] = {}

        def node(path: str) -> NodeAdoption:
            return nodes.setdefault(path, NodeAdoption(path))

        after: str | None = None
        while True:
            subscriptions = await self.store.list_subscriptions(tenant, 1000, after)
            for s in subscriptions:
                node(s.tenant).datasets.append(s.dataset)
            if len(subscriptions) < 1000:
                break
            after = subscriptions[-1].subscription_id
        after = None
        while True:
            installed = await self.store.list_installations(tenant, 1000, after)
            for i in installed:
                node(i.tenant).scenarios.append(i.catalog_item)
            if len(installed) < 1000:
                break
            after = installed[-1].installation_id
        calls = await self.usage.calls()
        for (path, component), count in (calls or {}).items():
            if tenancy.contains(tenant, path) and count > 0:
                found = node(path).calls
                found[component] = found.get(component, 0) + count
        ordered = [nodes[path] for path in sorted(nodes)]
        return Adoption(tenant, ordered, calls is not None)

    @staticmethod
    def _require_reader(caller: Principal, tenant: str) -> None:
        if not caller.has_scope(CATALOG_SCOPE):
            raise PermissionDenied(f"reading adoption needs the scope {CATALOG_SCOPE!r}")
        if not caller.can_see(tenant):
            raise NotFound(f"tenant {tenancy.tenant_name(tenant)!r} not found")


__all__ = ["DATASETS_READ", "Catalog", "CatalogItem", "ItemKind"]
