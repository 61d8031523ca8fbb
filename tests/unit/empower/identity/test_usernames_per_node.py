"""Usernames are unique per tenant node (issue 11, item 5): creating a user never
reveals a name taken at another node, and sign-in stays unambiguous without telling
which names exist anywhere."""

from __future__ import annotations

import sqlite3

import psycopg
import pytest

from services.empower.domain.identity import IdentityDirectory
from services.empower.store.identity_postgres import PostgresIdentityStore
from services.empower.store.identity_sqlite import SqliteIdentityStore
from services.kit.errors import AlreadyExists, Unauthenticated
from services.kit.tenancy import ALL_TENANTS, path_to_id

from .conftest import (
    CITY,
    GRID,
    PASSWORD,
    XIANGYANG,
    XINGMING,
    add_user,
    bootstrap,
    close_store,
    staff,
)
from .test_login import CountingHasher

OTHER_PASSWORD = "another long passphrase"


async def refused(directory: IdentityDirectory, username: str, password: str, **kw: str):
    with pytest.raises(Unauthenticated) as info:
        await directory.login(username, password, **kw)
    return (info.value.code, info.value.message, info.value.reason, info.value.metadata)


async def test_a_name_taken_at_another_node_is_not_revealed(tree):
    secretary = staff(XINGMING, "village_secretary")
    await add_user(tree, XIANGYANG, "wang.fang")
    # Xingming's secretary could not see Xiangyang's user; creating the name just works.
    mine = await tree.create_user(
        secretary, XINGMING, "wang.fang", "Wang Fang", "staff", ["grid_worker"]
    )
    assert mine.tenant == XINGMING
    # At the same node the name is taken, and the answer names only that node.
    with pytest.raises(AlreadyExists) as taken:
        await tree.create_user(secretary, XINGMING, "wang.fang", "W", "staff", ["grid_worker"])
    assert "xingming" in taken.value.message and "xiangyang" not in taken.value.message
    # A grid below is another node.
    await tree.create_user(secretary, GRID, "wang.fang", "W", "staff", ["grid_worker"])


async def test_a_shared_name_signs_in_by_its_password_or_its_node(tree, clock):
    here = await add_user(tree, XINGMING, "wang.fang")
    there = await add_user(tree, XIANGYANG, "wang.fang", password=OTHER_PASSWORD)
    assert (await tree.login("wang.fang", PASSWORD)).access_token
    assert (await tree.login("wang.fang", OTHER_PASSWORD)).access_token
    qualified = await tree.login(f"Wang.Fang@{path_to_id(XIANGYANG)}", OTHER_PASSWORD)
    by_field = await tree.login("wang.fang", PASSWORD, tenant=path_to_id(XINGMING))
    users = {}
    for tokens in (qualified, by_field):
        records = await tree.store.get_refresh_token(tokens.refresh_token.split("_")[1])
        users[records.tenant] = records.user_id
    assert users == {XIANGYANG: there.id, XINGMING: here.id}
    # The wrong node's password does not sign in at the named node.
    unknown = await refused(tree, "nobody.here", PASSWORD)
    assert await refused(tree, f"wang.fang@{path_to_id(XIANGYANG)}", PASSWORD) == unknown
    assert await refused(tree, "wang.fang", PASSWORD, tenant="not a tenant!") == unknown
    assert (
        await refused(
            tree, f"wang.fang@{path_to_id(XINGMING)}", PASSWORD, tenant=path_to_id(XIANGYANG)
        )
        == unknown
    )


async def test_an_ambiguous_name_answers_like_an_unknown_one_after_the_same_work(
    tree, store, clock
):
    await add_user(tree, XINGMING, "li.na")
    await add_user(tree, XIANGYANG, "li.na")  # the same password at two nodes
    hasher = CountingHasher()
    counting = IdentityDirectory(store, clock=clock, hasher=hasher)
    ambiguous = await refused(counting, "li.na", PASSWORD, source="198.51.100.1")
    assert hasher.verified == 2  # both accounts checked
    wrong = await refused(counting, "li.na", "wrong password", source="198.51.100.2")
    assert hasher.verified == 4  # the same work whatever the outcome
    unknown = await refused(counting, "nobody.here", PASSWORD, source="198.51.100.3")
    assert ambiguous == wrong == unknown
    assert unknown[2] == "INVALID_CREDENTIALS"
    # Named with its node, each account signs in.
    for node in (XINGMING, XIANGYANG):
        assert (await counting.login(f"li.na@{path_to_id(node)}", PASSWORD)).access_token


async def test_the_store_finds_every_account_of_a_name(tree, store):
    await add_user(tree, XINGMING, "li.na")
    await add_user(tree, XIANGYANG, "li.na")
    found = await store.credentials(ALL_TENANTS, "li.na")
    assert sorted(c.user.tenant for c in found) == [XIANGYANG, XINGMING]
    (one,) = await store.credentials(ALL_TENANTS, "li.na", XIANGYANG)
    assert one.user.tenant == XIANGYANG and one.password_hash.startswith("$argon2id$")
    # A caller's scope still bounds what it may find.
    assert [c.user.tenant for c in await store.credentials(XINGMING, "li.na")] == [XINGMING]
    assert await store.credentials(CITY, "nobody") == []


OLD_SQLITE_USERS = """
CREATE TABLE users (
    id TEXT PRIMARY KEY, tenant TEXT NOT NULL, username TEXT NOT NULL UNIQUE,
    display_name TEXT NOT NULL, kind TEXT NOT NULL, roles TEXT NOT NULL, password_hash TEXT,
    disabled INTEGER NOT NULL DEFAULT 0, failed_logins INTEGER NOT NULL DEFAULT 0,
    locked_until_us INTEGER, create_us INTEGER NOT NULL, update_us INTEGER NOT NULL);
CREATE TABLE refresh_tokens (
    id TEXT PRIMARY KEY, family_id TEXT NOT NULL, user_id TEXT NOT NULL REFERENCES users (id),
    tenant TEXT NOT NULL, token_hash TEXT NOT NULL, create_us INTEGER NOT NULL,
    expire_us INTEGER NOT NULL, use_us INTEGER, revoke_us INTEGER);
INSERT INTO users VALUES ('user_old', 'sh/jiading/anting/xingming', 'li.na', 'Li Na',
    'staff', '["grid_worker"]', NULL, 0, 0, NULL, 1, 1);
INSERT INTO refresh_tokens VALUES ('r1', 'r1', 'user_old', 'sh/jiading/anting/xingming',
    'h', 1, 2, NULL, NULL);
"""


async def test_an_older_sqlite_file_keeps_its_users_and_loses_the_global_constraint(tmp_path):
    path = tmp_path / "identity.sqlite3"
    with sqlite3.connect(path) as conn:
        conn.executescript(OLD_SQLITE_USERS)
    store = SqliteIdentityStore(path, synchronous="OFF")
    try:
        await _migrated(store)
    finally:
        await close_store(store)
    # Opening it again changes nothing.
    again = SqliteIdentityStore(path, synchronous="OFF")
    try:
        assert len(await again.credentials(ALL_TENANTS, "li.na")) == 2
    finally:
        await close_store(again)
    # The first version's columns that nothing read are gone.
    with sqlite3.connect(path) as conn:
        columns = {row[1] for row in conn.execute("PRAGMA table_info(users)")}
    assert not columns & {"failed_logins", "locked_until_us"}
    assert {"id", "username", "password_change_required"} <= columns


async def test_an_older_postgres_schema_keeps_its_users_and_loses_the_global_constraint(
    postgis_test_dsn,
):
    async with await psycopg.AsyncConnection.connect(postgis_test_dsn, autocommit=True) as conn:
        for statement in OLD_SQLITE_USERS.replace("INTEGER", "bigint").split(";"):
            if statement.strip():
                await conn.execute(
                    statement.replace(
                        "disabled bigint NOT NULL DEFAULT 0", "disabled boolean"
                    ).replace("NULL, 0, 0, NULL", "NULL, false, 0, NULL")
                )
    store = await PostgresIdentityStore.open(postgis_test_dsn)
    try:
        await _migrated(store)
    finally:
        await store.close()
    again = await PostgresIdentityStore.open(postgis_test_dsn)
    try:
        assert len(await again.credentials(ALL_TENANTS, "li.na")) == 2
    finally:
        await again.close()
    async with await psycopg.AsyncConnection.connect(postgis_test_dsn, autocommit=True) as conn:
        cur = await conn.execute(
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_schema = current_schema() AND table_name = 'users'"
        )
        columns = {row[0] for row in await cur.fetchall()}
    assert not columns & {"failed_logins", "locked_until_us"}
    assert {"id", "username", "password_change_required"} <= columns


async def _migrated(store) -> None:
    (old,) = await store.credentials(ALL_TENANTS, "li.na")
    assert (old.user.id, old.user.password_change_required) == ("user_old", False)
    assert await store.get_refresh_token("r1") is not None
    directory = IdentityDirectory(store)
    await directory.create_tenant(_root(), "", "sh", "Shanghai", "city", "310000")
    for parent, segment, level, code in (
        ("sh", "jiading", "district", "310114"),
        ("sh/jiading", "anting", "town", "310114102"),
        ("sh/jiading/anting", "xiangyang", "village", "310114102202"),
        ("sh/jiading/anting", "xingming", "village", "310114102201"),
    ):
        await directory.create_tenant(_root(), parent, segment, segment, level, code)
    # The old row's node keeps its name; another node may now use it.
    with pytest.raises(AlreadyExists):
        await add_user(directory, XINGMING, "li.na")
    await add_user(directory, XIANGYANG, "li.na")


def _root():
    return bootstrap()
