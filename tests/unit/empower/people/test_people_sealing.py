"""Field encryption and blind indexes: what a stolen row can and cannot reveal."""

from __future__ import annotations

import base64
import os

import pytest

from services.kit.sealing import NONCE_BYTES, Sealer, SealingError


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


K0, K1, INDEX = os.urandom(32), os.urandom(32), os.urandom(32)


def test_sealed_values_carry_version_and_key_id_and_differ_every_time():
    sealer = Sealer({"k1": K1}, "k1", INDEX)
    first = sealer.seal("310114195203141234", record="pe_1", field="id_number")
    second = sealer.seal("310114195203141234", record="pe_1", field="id_number")
    assert first.startswith("v1:k1:") and second.startswith("v1:k1:")
    assert first != second  # a fresh nonce each time: equal values do not look equal
    body = base64.b64decode(first.split(":", 2)[2])
    assert len(body) == NONCE_BYTES + len("310114195203141234") + 16  # nonce, text, GCM tag
    assert "310114195203141234" not in first
    assert sealer.open(first, record="pe_1", field="id_number") == "310114195203141234"


@pytest.mark.parametrize(
    ("record", "field"), [("pe_2", "id_number"), ("pe_1", "phone"), ("pe_2", "phone")]
)
def test_a_value_opens_only_for_its_own_record_and_field(record, field):
    sealer = Sealer({"k1": K1}, "k1", INDEX)
    sealed = sealer.seal("13912345678", record="pe_1", field="id_number")
    with pytest.raises(SealingError):
        sealer.open(sealed, record=record, field=field)


def test_an_altered_byte_does_not_open():
    sealer = Sealer({"k1": K1}, "k1", INDEX)
    sealed = sealer.seal("Zhou Meilan", record="pe_1", field="name")
    head, body = sealed.rsplit(":", 1)
    raw = bytearray(base64.b64decode(body))
    raw[-1] ^= 1
    with pytest.raises(SealingError):
        sealer.open(f"{head}:{b64(bytes(raw))}", record="pe_1", field="name")
    with pytest.raises(SealingError):
        sealer.open("v1:k1:not base64!", record="pe_1", field="name")
    with pytest.raises(SealingError):
        sealer.open("plain text", record="pe_1", field="name")


def test_keys_rotate_old_values_still_open_new_ones_use_the_active_key():
    old = Sealer({"k0": K0}, "k0", INDEX)
    sealed_before = old.seal("13912345678", record="pe_1", field="phone")
    rotated = Sealer.from_env_value(f"k1:{b64(K1)},k0:{b64(K0)}", b64(INDEX))
    assert rotated.active == "k1"
    assert rotated.open(sealed_before, record="pe_1", field="phone") == "13912345678"
    assert rotated.needs_reseal(sealed_before)
    sealed_after = rotated.seal("13912345678", record="pe_1", field="phone")
    assert sealed_after.startswith("v1:k1:") and not rotated.needs_reseal(sealed_after)
    with pytest.raises(SealingError, match="no key 'k1'"):
        old.open(sealed_after, record="pe_1", field="phone")
    # The blind index does not depend on the encryption keys: lookups survive rotation.
    assert old.blind_index("13912345678", field="phone") == rotated.blind_index(
        "13912345678", field="phone"
    )


def test_blind_indexes_are_keyed_and_separate_fields():
    sealer = Sealer({"k1": K1}, "k1", INDEX)
    other = Sealer({"k1": K1}, "k1", os.urandom(32))
    value = "310114195203141234"
    assert sealer.blind_index(value, field="id_number") == sealer.blind_index(
        value, field="id_number"
    )
    assert sealer.blind_index(value, field="id_number") != sealer.blind_index(value, field="phone")
    assert sealer.blind_index(value, field="id_number") != other.blind_index(
        value, field="id_number"
    )
    assert len(sealer.blind_index(value, field="id_number")) == 64


BAD_KEY_CONFIGURATIONS = [
    ("", b64(INDEX), "no encryption key"),
    ("k1", b64(INDEX), "<kid>:<base64 key>"),
    (f"k1:{b64(K1)},k1:{b64(K0)}", b64(INDEX), "appears twice"),
    ("k1:%%%", b64(INDEX), "key 'k1' is not valid base64"),
    (f"k1:{b64(K1[:16])}", b64(INDEX), "must be 32 bytes"),
    (f"bad kid:{b64(K1)}", b64(INDEX), "key id"),
    (f"k1:{b64(K1)}", b64(K1), "must differ"),
    (f"k1:{b64(K1)}", b64(INDEX[:8]), "at least 32 bytes"),
    (f"k1:{b64(K1)}", "***", "index key is not valid base64"),
]


@pytest.mark.parametrize(
    ("keys", "index", "message"),
    BAD_KEY_CONFIGURATIONS,
    # The keys are random: named by their message, every process collects the same tests.
    ids=[message for _, _, message in BAD_KEY_CONFIGURATIONS],
)
def test_bad_key_configuration_is_refused_without_showing_keys(keys, index, message):
    with pytest.raises(ValueError, match=message) as info:
        Sealer.from_env_value(keys, index)
    assert b64(K1) not in str(info.value) and b64(INDEX) not in str(info.value)


def test_the_first_key_listed_is_active_and_spaces_are_tolerated():
    sealer = Sealer.from_env_value(f" k1:{b64(K1)} , k0:{b64(K0)} ,", f" {b64(INDEX)} ")
    assert sealer.active == "k1"
    with pytest.raises(ValueError, match="not in the key ring"):
        Sealer({"k1": K1}, "k2", INDEX)
