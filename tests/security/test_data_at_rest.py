"""What a local account that can read the data folder finds there: nothing it may read.

The probe found every store file 0644 in a 0755 folder and the token-signing private
key in clear in `empower.sqlite3-wal`, and forged an admin token with it. Now the
folder is 0700, every file in it 0600, and the private key is sealed under the seal
keys (which live in a Secret, or for `make run` in the owner-only dev-secrets file).
"""

from __future__ import annotations

import base64
import secrets
import sqlite3
import stat
import time
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from security_world import World, expect, new_phone, open_signing_key

from devstack import demo_village
from services.kit import tenancy


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and not p.is_symlink())


def test_data_folders_are_0700_and_every_file_in_them_0600(world: World):
    data_dir = world.stack.config.data_dir
    world.client.get("/v1/me", headers=world.a_super.headers)  # the stores are in use
    folders = [data_dir, *(p for p in data_dir.rglob("*") if p.is_dir())]
    wrong = [
        f"{p.relative_to(data_dir.parent)} {stat.S_IMODE(p.stat().st_mode):o}"
        for p in folders
        if stat.S_IMODE(p.stat().st_mode) != 0o700
    ]
    files = _files(data_dir)
    names = {p.name for p in files}
    # The stores the probe read are among those checked, write-ahead logs included.
    assert {"empower.sqlite3", "empower.sqlite3-wal", "events.sqlite3", "map.gpkg"} <= names
    assert {"dev-secrets.json", "demo-credentials.json"} <= names
    wrong += [
        f"{p.relative_to(data_dir)} {stat.S_IMODE(p.stat().st_mode):o}"
        for p in files
        if stat.S_IMODE(p.stat().st_mode) != 0o600
    ]
    assert not wrong, wrong


def _signing_keys(world: World) -> list[tuple[str, str, str]]:
    database = world.stack.config.data_dir / "empower.sqlite3"
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as conn:
        return conn.execute("SELECT kid, private_pem, public_x FROM signing_keys").fetchall()


def test_the_token_signing_private_key_is_in_no_file_under_the_data_folder(world: World):
    # Signing in makes (or uses) the active key.
    world.login(world.a_super.username, world.a_super.password)
    data_dir = world.stack.config.data_dir
    published = {k["kid"] for k in world.client.get("/.well-known/jwks.json").json()["keys"]}
    keys = _signing_keys(world)
    assert keys and {kid for kid, _, _ in keys} & published
    needles: dict[str, bytes] = {}
    for kid, stored, public_x in keys:
        assert not stored.startswith("-----BEGIN"), f"key {kid} is stored in clear"
        pem = open_signing_key(data_dir, kid, stored)
        private = serialization.load_pem_private_key(pem.encode(), password=None)
        assert isinstance(private, Ed25519PrivateKey)
        raw_public = private.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        # It is the real key: its public half is the one published for `kid`.
        assert base64.urlsafe_b64encode(raw_public).rstrip(b"=").decode() == public_x
        raw = private.private_bytes(
            serialization.Encoding.Raw,
            serialization.PrivateFormat.Raw,
            serialization.NoEncryption(),
        )
        der = private.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        needles[f"{kid} raw"] = raw
        needles[f"{kid} DER"] = der
        needles[f"{kid} PEM"] = pem.encode()
        needles[f"{kid} PEM body"] = base64.b64encode(der)
        needles[f"{kid} base64url"] = base64.urlsafe_b64encode(raw).rstrip(b"=")
    found = [
        f"{what} in {path.name}"
        for path in _files(data_dir)
        for what, needle in needles.items()
        if needle in path.read_bytes()
    ]
    assert not found, found


def test_a_reporters_phone_is_in_no_file_under_the_data_folder(world: World):
    """The probe read reporters' phones in clear from the events table; the outbox and
    the local bus log held them too. Now the table holds them sealed and the outbox and
    bus the masked copy, while the reporter still reads the number back."""
    phone = new_phone(secrets.SystemRandom())
    who = world.a_super
    body = {
        "category": "environment.garbage",
        "description": "Security suite report with a phone number",
        "location": {"longitude": world.a.point[0], "latitude": world.a.point[1]},
        "reporter_contact": phone,
        "request_id": f"security-{secrets.token_hex(8)}",
    }
    url = f"/v1/tenants/{tenancy.path_to_id(who.tenant)}/events"
    created = expect(world.client.post(url, json=body, headers=who.headers), 201)
    read = expect(world.client.get(f"{url}/{created['id']}", headers=who.headers), 200)
    assert read["reporter_contact"] == phone  # the reporter sees their own number
    world.remember(phone)
    deadline = time.monotonic() + 10
    while True:  # the outbox relay publishes to the bus log within moments
        found = [
            p.name for p in _files(world.stack.config.data_dir) if phone.encode() in p.read_bytes()
        ]
        masked = f"{phone[:3]}****{phone[-4:]}".encode()
        published = any(masked in p.read_bytes() for p in _files(world.stack.config.data_dir))
        if found or published or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert not found, found
    assert published, "the masked copy never reached the outbox or the bus log"


def test_no_residents_id_number_or_phone_is_in_a_file_under_the_data_folder(world: World):
    """The demo GeoPackage used to list the residents in clear; empower seals them."""
    people = demo_village.residents_for(world.stack.config.map_file)
    needles = {str(v).encode() for column in ("id_number", "phone") for v in people[column]}
    contents = {p.name: p.read_bytes() for p in _files(world.stack.config.data_dir)}
    found = [name for name, data in contents.items() if any(n in data for n in needles)]
    assert not found, found
