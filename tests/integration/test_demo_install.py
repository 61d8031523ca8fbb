"""The demo identities install once, and an install interrupted half-way (Ctrl-C during
`make run`'s first start) is finished by the next start instead of failing."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from devstack import demo_identity
from devstack.demo_identity import DemoCredentials
from devstack.stack import Stack, StackConfig
from grassroots.empower.v1 import identity_service_pb2 as identity_pb
from grassroots.empower.v1 import identity_service_pb2_grpc as identity_grpc
from services.empower.domain.tokens import hash_secret, parse_api_key
from services.kit import signing, tenancy
from services.kit.principal import Principal


class Interrupted(BaseException):
    """Stands for the KeyboardInterrupt of Ctrl-C (a BaseException, as that is)."""


@pytest.fixture()
def empower(demo_gpkg: Path, tmp_path: Path) -> Iterator[Stack]:
    config = StackConfig.on_free_ports(tmp_path / "data", log_dir=tmp_path / "logs")
    config.data_dir.mkdir(parents=True)
    shutil.copy(demo_gpkg, config.map_file)
    stack = Stack(config)
    stack.start("empower")
    try:
        stack.wait_ready(60, services=("empower",))
        signing.configure(signing.KeyRing.parse(config.dev_secrets()[signing.KEYS_VARIABLE]))
        yield stack
    finally:
        stack.stop_all()


def install(stack: Stack, interrupt_at_save: int | None = None) -> DemoCredentials:
    """One start's install; with `interrupt_at_save`, Ctrl-C arrives as the n-th save
    begins (after the call whose result it records)."""
    saves = {"n": 0}
    saved = (
        DemoCredentials.load(stack.credentials_file) if stack.credentials_file.exists() else None
    )

    def save(credentials: DemoCredentials) -> None:
        saves["n"] += 1
        if saves["n"] == interrupt_at_save:
            raise Interrupted
        credentials.save(stack.credentials_file)

    async def run() -> DemoCredentials:
        async with grpc.aio.insecure_channel(stack.config.address("empower")) as channel:
            return await demo_identity.install(channel, stack.config.map_file, saved, save)

    return asyncio.run(run())


async def _check_platform_knows(stack: Stack, credentials: DemoCredentials) -> None:
    # Sign-in and key look-up are the gateway's calls.
    metadata = Principal(
        "services/gateway", "sh", kind="service", scopes=frozenset({"identity:verify"})
    ).to_metadata()
    async with grpc.aio.insecure_channel(stack.config.address("empower")) as channel:
        identity = identity_grpc.IdentityServiceStub(channel)
        for username in ("district.it", "xingming.secretary", credentials.accounts[-1].username):
            account = credentials.account(username)
            token = await identity.Login(
                identity_pb.LoginRequest(username=username, password=account.password),
                metadata=metadata,
            )
            assert token.access_token
        for key in credentials.app_keys.values():
            key_id, secret = parse_api_key(key)
            found = await identity.LookupApiKey(
                identity_pb.LookupApiKeyRequest(key_id=key_id), metadata=metadata
            )
            assert found.secret_sha256 == hash_secret(secret)
            assert not found.api_key.revoked


async def _apps_of(stack: Stack, tenant: str) -> list[str]:
    async with grpc.aio.insecure_channel(stack.config.address("empower")) as channel:
        listed = await identity_grpc.IdentityServiceStub(channel).ListApps(
            identity_pb.ListAppsRequest(parent=tenancy.tenant_name(tenant)),
            metadata=demo_identity.BOOTSTRAP.to_metadata(),
        )
    return [app.display_name for app in listed.apps]


def test_install_interrupted_twice_is_finished_by_the_next_start(empower: Stack) -> None:
    # Ctrl-C while the staff are being created: some users exist, all with saved passwords.
    with pytest.raises(Interrupted):
        install(empower, interrupt_at_save=4)
    partial = DemoCredentials.load(empower.credentials_file)
    assert not partial.complete and len(partial.accounts) == 3
    # Ctrl-C right after the first app was made, before its key was written down: the
    # remaining two secretaries and every grid worker are one save each, then the key.
    workers = len(demo_identity._grid_workers(empower.config.map_file))
    with pytest.raises(Interrupted):
        install(empower, interrupt_at_save=2 + workers + 1)
    lost = DemoCredentials.load(empower.credentials_file)
    assert not lost.complete and not lost.app_keys
    assert len(lost.accounts) == 5 + workers

    finished = install(empower)

    assert finished.complete
    assert set(finished.app_keys) == {*demo_identity.VILLAGES, demo_identity.TOWN}
    names = [a.username for a in finished.accounts]
    assert len(names) == len(set(names))
    assert names[:3] == [a.username for a in partial.accounts]
    assert DemoCredentials.load(empower.credentials_file) == finished
    asyncio.run(_check_platform_knows(empower, finished))
    assert asyncio.run(_apps_of(empower, "sh/jiading/anting/xingming")) == [
        "Xingming Village demo app"
    ]
    # And a later start only checks.
    assert install(empower, interrupt_at_save=1) == finished


def test_credentials_files_from_before_resumable_installs_count_as_complete(
    tmp_path: Path,
) -> None:
    path = tmp_path / "demo-credentials.json"
    path.write_text('{"accounts": [], "app_keys": {"sh/jiading/anting": "grk_x"}}')
    assert DemoCredentials.load(path).complete
