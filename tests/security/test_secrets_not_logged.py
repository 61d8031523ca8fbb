"""No password, key, token or personal number reaches the platform's logs.

Runs after every other test of the suite (see conftest.py), so the logs hold all the
sign-ins, key uses, refused credentials, fuzzing and unmasked reads the suite made.
"""

from __future__ import annotations

import re
from pathlib import Path

from security_world import World

from devstack import demo_village
from services.kit import gb11643

# 18 characters standing alone: not inside a longer number, word, ULID or decimal.
ID_NUMBER = re.compile(r"(?<![\w.])\d{17}[\dXx](?!\w)")


def _logs(world: World) -> dict[str, str]:
    files = sorted(Path(world.log_dir).glob("*.log"))
    return {f.name: f.read_text(errors="replace") for f in files}


def _secret_parts(secret: str) -> set[str]:
    """The secret and the parts of it that are secret on their own."""
    parts = {secret}
    if secret.startswith(("grk_", "grr_")):
        parts.add(secret.split("_", 2)[2])  # the part after the key or token id
    elif secret.count(".") == 2:
        parts.add(secret.rsplit(".", 1)[1])  # a JWT's signature
    return {p for p in parts if len(p) >= 12}


def _demo_residents(world: World) -> tuple[set[str], set[str]]:
    columns = demo_village.residents_for(world.stack.config.map_file)
    ids = {str(v) for v in columns["id_number"]}
    phones = {str(v) for v in columns["phone"]}
    return ids, phones


def _is_id_number(text: str) -> bool:
    return gb11643.check_character(text[:17]) == text[17].upper()


def test_no_secret_or_personal_number_is_logged(world):
    logs = _logs(world)
    assert {"gateway.log", "empower.log"} <= set(logs), sorted(logs)
    # The logs saw the suite: sign-ins and key look-ups are logged as calls.
    assert "IdentityService/Login" in logs["empower.log"]
    assert "IdentityService/LookupApiKey" in logs["empower.log"]

    assert len(world.secrets) >= 20
    leaks = [
        f"{name}: {part[:6]}... ({len(part)} characters)"
        for secret in world.secrets
        for part in _secret_parts(secret)
        for name, text in logs.items()
        if part in text
    ]
    assert not leaks, "secrets in the logs:\n" + "\n".join(leaks)

    ids, phones = _demo_residents(world)
    ids.add(world.b.person_id_number)
    phones.add(world.b.person_phone)
    known = [
        f"{name}: {value[:3]}..."
        for name, text in logs.items()
        for value in ids | phones
        if value in text
    ]
    assert not known, "personal numbers in the logs:\n" + "\n".join(known)
    shaped = [
        f"{name}: {m[:3]}...{m[-2:]}"
        for name, text in logs.items()
        for m in ID_NUMBER.findall(text)
        if _is_id_number(m)
    ]
    assert not shaped, "unmasked ID numbers in the logs:\n" + "\n".join(shaped)
