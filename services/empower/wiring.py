"""Assemble the empower service from its settings: the one start-up `__main__` and tests share."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from services.empower.api import build_component
from services.empower.config import EmpowerSettings
from services.empower.domain.audit import AuditLog
from services.empower.domain.identity import IdentityDirectory
from services.empower.domain.people import PeopleRegistry
from services.empower.domain.signin_throttle import ACCOUNT_POLICY, SignInThrottle
from services.empower.empowerment import open_empowerment
from services.empower.store.identity_postgres import PostgresIdentityStore
from services.empower.store.identity_sqlite import SqliteIdentityStore
from services.empower.store.people_postgres import PostgresPeopleStore
from services.empower.store.people_sqlite import SqlitePeopleStore
from services.kit.component import ServiceComponent
from services.kit.sealing import Sealer


@dataclass
class Empower:
    directory: IdentityDirectory
    registry: PeopleRegistry
    audit: AuditLog
    closers: list[Callable[[], Any]] = field(default_factory=list)


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
    if settings.backend == "postgres":
        identity = await PostgresIdentityStore.open(settings.postgres_dsn)
        people = await PostgresPeopleStore.open(settings.postgres_dsn)
    else:
        settings.database.parent.mkdir(parents=True, exist_ok=True)
        identity = SqliteIdentityStore(settings.database)
        people = SqlitePeopleStore(
            settings.database.with_name(settings.database.stem + "-people.sqlite3")
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
    )
    registry = PeopleRegistry(people, audit, sealer)
    return Empower(directory, registry, audit, [identity.close, people.close])


async def build(settings: EmpowerSettings) -> ServiceComponent:
    """The component `run_service` serves: tenants, identity, people and audit."""
    opened = await open_empower(settings)
    work = await open_empowerment(settings, opened.registry, opened.directory, opened.audit)
    return build_component(
        opened.directory,
        opened.registry,
        opened.audit,
        [*work.closers, *opened.closers],
        work.servicers,
    )
