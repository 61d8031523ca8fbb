"""Backup and restore as docs/operations.md tells district IT to do it.

A platform on PostgreSQL (events, empower) and PostGIS (map) takes reports and users;
each database is dumped with `pg_dump -Fc` while it runs, restored with `pg_restore`
into new databases, and a second platform started on the restored databases with the
same Secrets (the key ring and the sealing keys) serves the same reports, signs the
same people in and reads their sealed personal data.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid

import httpx
import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import make_conninfo

from devstack.demo_identity import DemoCredentials
from devstack.stack import Stack, StackConfig
from tests.conftest import DEFAULT_DSN, DSN_VARIABLE
from tests.integration.conftest import GENEROUS_LIMITS
from tests.integration.test_events_reliability import report_body, valid_points

COMPONENTS_ON_POSTGRES = {"events": "postgres", "empower": "postgres", "map": "postgis"}
TOWN_EVENTS = "/v1/tenants/sh-jiading-anting/events"


BASE_DSN = os.environ.get(DSN_VARIABLE, DEFAULT_DSN)


def _admin() -> psycopg.Connection:
    return psycopg.connect(BASE_DSN, autocommit=True)


def _create_database(name: str, postgis: bool) -> str:
    with _admin() as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    dsn = make_conninfo(BASE_DSN, dbname=name)
    if postgis:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("CREATE EXTENSION postgis")
    return dsn


def _drop_databases(names: list[str]) -> None:
    with _admin() as admin:
        for name in names:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


def _platform(root, demo_gpkg, dsns: dict[str, str]) -> Stack:
    config = StackConfig.on_free_ports(root / "data", log_dir=root / "logs")
    config.extra_env.update(GENEROUS_LIMITS)
    for component, backend in COMPONENTS_ON_POSTGRES.items():
        prefix = f"GRASSROOTS_{component.upper()}_"
        config.extra_env[prefix + "BACKEND"] = backend
        config.extra_env[prefix + "POSTGRES_DSN"] = dsns[component]
    return Stack(config)


def _sign_in(gateway: str, username: str, password: str) -> dict[str, str]:
    answer = httpx.post(
        f"{gateway}/v1/auth/token",
        data={"grant_type": "password", "username": username, "password": password},
        timeout=30,
    )
    assert answer.status_code == 200, answer.text
    return {"Authorization": f"Bearer {answer.json()['access_token']}"}


@pytest.mark.integration
def test_a_dump_of_a_running_platform_restores_into_a_working_platform(
    tmp_path, demo_gpkg, grid_index
):
    tag = uuid.uuid4().hex[:8]
    originals = {c: f"grassroots_backup_{c}_{tag}" for c in COMPONENTS_ON_POSTGRES}
    restored = {c: f"grassroots_restored_{c}_{tag}" for c in COMPONENTS_ON_POSTGRES}
    try:
        dsns = {c: _create_database(n, c == "map") for c, n in originals.items()}
        first = _platform(tmp_path / "first", demo_gpkg, dsns)
        first.config.data_dir.mkdir(parents=True)
        shutil.copy(demo_gpkg, first.config.map_file)
        try:
            first.start_all()
            first.wait_ready(90)
            demo = first.install_demo_identities()
            gateway = first.config.gateway_url
            points = valid_points(grid_index, 5)
            reported = {}
            for n, (lon, lat) in enumerate(points):
                answer = httpx.post(
                    f"{gateway}{TOWN_EVENTS}",
                    json=report_body(lon, lat, n),
                    headers=first.api_headers(),
                    timeout=30,
                )
                assert answer.status_code == 201, answer.text
                reported[answer.json()["id"]] = answer.json()["description"]
            # Dumped while the platform runs: pg_dump reads one consistent snapshot.
            dumps = {}
            for component in originals:
                dumps[component] = tmp_path / f"{component}.dump"
                subprocess.run(
                    ["pg_dump", "-Fc", "-f", str(dumps[component]), dsns[component]],
                    check=True,
                    timeout=300,
                )
        finally:
            first.stop_all()

        restored_dsns = {}
        for component, name in restored.items():
            restored_dsns[component] = _create_database(name, postgis=False)
            done = subprocess.run(
                ["pg_restore", "--no-owner", "-d", restored_dsns[component], str(dumps[component])],
                capture_output=True,
                text=True,
                timeout=300,
                check=False,
            )
            assert done.returncode == 0, done.stderr

        # The same Secrets: the data directory holds the dev key ring and sealing keys.
        second = _platform(tmp_path / "first", demo_gpkg, restored_dsns)
        try:
            second.start_all()
            second.wait_ready(90)
            gateway = second.config.gateway_url
            for event_id, description in reported.items():
                answer = httpx.get(
                    f"{gateway}{TOWN_EVENTS}/{event_id}", headers=second.api_headers(), timeout=30
                )
                assert answer.status_code == 200, answer.text
                assert answer.json()["description"] == description
            saved = DemoCredentials.load(second.credentials_file)
            assert saved.accounts == demo.accounts
            secretary = next(a for a in saved.accounts if a.username.endswith(".secretary"))
            headers = _sign_in(gateway, secretary.username, secretary.password)
            people = httpx.get(
                f"{gateway}/v1/tenants/sh-jiading-anting-xingming/people",
                params={"page_size": 5, "purpose": "restore check"},
                headers=headers,
                timeout=30,
            )
            assert people.status_code == 200, people.text
            numbers = [p["id_number"] for p in people.json()["people"]]
            assert numbers and all(len(n) == 18 and "*" not in n for n in numbers), numbers
            layers = httpx.get(
                f"{gateway}/v1/tenants/sh-jiading-anting-xingming/layers",
                headers=second.api_headers(),
                timeout=30,
            )
            assert layers.status_code == 200
            assert "buildings" in {layer["layer_id"] for layer in layers.json()["layers"]}
        finally:
            second.stop_all()
    finally:
        _drop_databases([*originals.values(), *restored.values()])
