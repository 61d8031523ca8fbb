"""The command service's plans in-process over real gRPC, on both stores.

Every test runs on the embedded SQLite file and on PostgreSQL (a schema of the test's
own in the session's database, see tests/conftest.py), with the real local bus.
"""

from __future__ import annotations

import pytest

from grassroots.command.v1 import plans_service_pb2_grpc as pb_grpc
from services.command.config import CommandSettings
from services.command.wiring import assemble
from services.kit.principal import Principal
from tests.conftest import serve_in_process

READ, WRITE, DISPATCH = "command:read", "command:write", "command:dispatch"
COMMANDER = frozenset({READ, WRITE, DISPATCH})
CARER = frozenset({READ, DISPATCH})


def who(tenant: str, subject: str = "users/commander", scopes: frozenset[str] = COMMANDER):
    """Signed metadata of a caller (re-signed at every call, as the gateway does)."""
    return Principal(subject=subject, tenant=tenant, kind="user", scopes=scopes).to_metadata()


@pytest.fixture(params=["sqlite", "postgres"])
async def command(request, tmp_path):
    """A command server started as `python -m services.command` starts it."""
    backend = request.param
    dsn = request.getfixturevalue("postgis_test_dsn") if backend == "postgres" else ""
    settings = CommandSettings(
        grpc_port=0,
        host="127.0.0.1",
        # Plans never call events; the address is only required by the settings.
        events_address="127.0.0.1:9",
        backend=backend,
        database=tmp_path / "command.sqlite3",
        postgres_dsn=dsn,
        bus_url=str(tmp_path / "bus.sqlite3"),
        service_order_lead_hours=0,
        plans_poll_seconds=0.1,
    )
    parts = await assemble(settings)
    server = await serve_in_process("command", parts.component)
    server.backend = backend
    server.bus = parts.bus
    server.desk = parts.plans.desk
    server.command_desk = parts.desk  # dispatch: the tasks a plan's levels open
    server.store = parts.plans.store
    server.settings = settings
    server.timers = parts.store  # command's durable timers (plans' occurrences ride on them)
    server.stub = pb_grpc.PlansServiceStub(server.channel)
    yield server
    await server.channel.close()
    await server.running.stop()
    await parts.component.close()
