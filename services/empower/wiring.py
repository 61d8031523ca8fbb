"""Assemble the empower service from its settings: the one start-up `__main__` and tests share."""

from __future__ import annotations

import dataclasses
import importlib.metadata
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from services.empower.api import build_component
from services.empower.catalog_probe import ReflectionProbe
from services.empower.config import EmpowerSettings
from services.empower.domain.audit import AuditLog
from services.empower.domain.catalog import Catalog
from services.empower.domain.datasets.addresses import AddressBook
from services.empower.domain.datasets.service import DatasetDesk
from services.empower.domain.identity import IdentityDirectory
from services.empower.domain.people import PeopleRegistry
from services.empower.domain.signin_throttle import ACCOUNT_POLICY, SignInThrottle
from services.empower.domain.verification_gate import GateLimits, VerificationGate
from services.empower.empowerment import open_empowerment
from services.empower.gateway_facts import GatewayFacts
from services.empower.map_addresses import MapAddresses
from services.empower.scenario_manifests import ScenarioManifests
from services.empower.store.datasets_postgres import PostgresDatasetStore
from services.empower.store.datasets_sqlite import SqliteDatasetStore
from services.empower.store.identity_postgres import PostgresIdentityStore
from services.empower.store.identity_sqlite import SqliteIdentityStore
from services.empower.store.people_postgres import PostgresPeopleStore
from services.empower.store.people_sqlite import SqlitePeopleStore
from services.kit.component import ServiceComponent
from services.kit.components import COMPONENTS
from services.kit.errors import FailedPrecondition
from services.kit.sealing import Sealer


@dataclass
class Empower:
    directory: IdentityDirectory
    registry: PeopleRegistry
    audit: AuditLog
    datasets: DatasetDesk | None = None
    catalog: Catalog | None = None
    closers: list[Callable[[], Any]] = field(default_factory=list)


class NoMapAddresses:
    """Without a map service there is no address list: imports say so."""

    async def address_book(self, tenant: str) -> AddressBook:
        raise FailedPrecondition(
            "importing rows needs the map service's buildings: set GRASSROOTS_EMPOWER_MAP_ADDRESS"
        )


def check_backend(settings: EmpowerSettings) -> None:
    """Refuse to start, naming the variable, when PostgreSQL is chosen without a DSN."""
    if settings.backend == "postgres" and not settings.postgres_dsn:
        raise SystemExit(
            "invalid configuration for EmpowerSettings: GRASSROOTS_EMPOWER_POSTGRES_DSN must "
            "be set when GRASSROOTS_EMPOWER_BACKEND is postgres"
        )


async def open_empower(settings: EmpowerSettings) -> Empower:
    """Identity in one store, people and the audit log in another (one SQLite file each)."""
    check_backend(settings)
    sealer = Sealer.from_env_value(
        settings.seal_keys.get_secret_value(), settings.index_key.get_secret_value()
    )
    identity: SqliteIdentityStore | PostgresIdentityStore
    people: SqlitePeopleStore | PostgresPeopleStore
    shelf: SqliteDatasetStore | PostgresDatasetStore
    if settings.backend == "postgres":
        identity = await PostgresIdentityStore.open(settings.postgres_dsn)
        people = await PostgresPeopleStore.open(settings.postgres_dsn)
        shelf = await PostgresDatasetStore.open(settings.postgres_dsn)
    else:
        settings.database.parent.mkdir(parents=True, exist_ok=True)
        identity = SqliteIdentityStore(settings.database)
        people = SqlitePeopleStore(
            settings.database.with_name(settings.database.stem + "-people.sqlite3")
        )
        shelf = SqliteDatasetStore(
            settings.database.with_name(settings.database.stem + "-datasets.sqlite3")
        )
    # One audit chain for reads of personal data and for administrative actions.
    audit = AuditLog(people)
    directory = IdentityDirectory(
        identity,
        access_token_lifetime=timedelta(minutes=settings.access_token_minutes),
        key_rotation_period=timedelta(hours=settings.signing_key_rotation_hours),
        audit=audit,
        sealer=sealer,
        throttle=SignInThrottle(
            account=dataclasses.replace(
                ACCOUNT_POLICY, first_delay=timedelta(seconds=settings.sign_in_first_delay_seconds)
            )
        ),
        gate=VerificationGate(
            GateLimits(
                parallel=settings.sign_in_parallel_checks,
                queue=settings.sign_in_queue,
                per_source=settings.sign_in_checks_per_source,
                max_wait=timedelta(seconds=settings.sign_in_max_wait_seconds),
            )
        ),
    )
    registry = PeopleRegistry(people, audit, sealer)
    closers: list[Callable[[], Any]] = [identity.close, people.close, shelf.close]
    addresses: MapAddresses | NoMapAddresses = NoMapAddresses()
    if settings.map_address:
        addresses = MapAddresses(settings.map_address)
        closers.append(addresses.close)
    datasets = DatasetDesk(shelf, addresses, audit, sealer)
    probe = ReflectionProbe(
        {
            "map": settings.map_address,
            "events": settings.events_address,
            "command": settings.command_address,
            "twin": settings.twin_address,
            # The catalog describes this component too, as a caller would see it.
            "empower": _own_address(settings),
        }
    )
    gateway = GatewayFacts(settings.gateway_url, settings.gateway_metrics_url)
    closers += [probe.close, gateway.close]
    catalog = Catalog(
        list(COMPONENTS.values()),
        probe,
        gateway,
        ScenarioManifests(settings.scenarios_dir),
        shelf,
        gateway,
        tenants=identity,
        version=_version(),
    )
    return Empower(directory, registry, audit, datasets, catalog, closers)


def _own_address(settings: EmpowerSettings) -> str:
    """Where this service answers (unknown before start when the port is chosen then)."""
    if not settings.grpc_port:
        return ""
    host = "127.0.0.1" if settings.host in ("", "0.0.0.0", "::") else settings.host
    return f"{host}:{settings.grpc_port}"


def _version() -> str:
    try:
        return importlib.metadata.version("grassroots")
    except importlib.metadata.PackageNotFoundError:
        return ""


async def build(settings: EmpowerSettings) -> ServiceComponent:
    """The component `run_service` serves: tenants, identity, people and audit."""
    opened = await open_empower(settings)
    work = await open_empowerment(
        settings,
        opened.audit,
        opened.directory.store,
        opened.registry.store,
        opened.registry.sealer,
    )
    return build_component(
        opened.directory,
        opened.registry,
        opened.audit,
        [*work.closers, *opened.closers],
        work.servicers,
        datasets=opened.datasets,
        catalog=opened.catalog,
    )
