"""Device keys: an entity's key writes that entity, a tenant's key its subtree, no more."""

from __future__ import annotations

import pytest

from services.kit import signing
from services.twin.mqtt_bridge.device_keys import DeviceKeys

GAUGE = "tenants/sh-jiading-anting-xingming/entities/gauge-7"
XINGMING = "sh/jiading/anting/xingming"


@pytest.fixture
def keys() -> DeviceKeys:
    return DeviceKeys(signing.KeyRing.parse(signing.generate_keys_value("d1")))


def test_an_entity_key_covers_that_entity_only(keys: DeviceKeys) -> None:
    grant = keys.verify(keys.issue(GAUGE))
    assert grant is not None and grant.subject == GAUGE
    assert grant.allows(XINGMING, "gauge-7") is None
    assert grant.allows(XINGMING, "gauge-8") == "wrong_entity"
    assert grant.allows("sh/jiading/anting/xiangyang", "gauge-7") == "wrong_tenant"
    assert grant.allows("sh/jiading/anting/xingming/block1", "gauge-7") == "wrong_entity"


def test_a_tenant_key_covers_its_subtree(keys: DeviceKeys) -> None:
    grant = keys.verify(keys.issue("tenants/sh-jiading-anting"))
    assert grant is not None
    assert grant.allows(XINGMING, "anything") is None
    assert grant.allows("sh/jiading/malu", "gauge-7") == "wrong_tenant"


def test_forged_foreign_and_malformed_keys_are_not_valid(keys: DeviceKeys) -> None:
    good = keys.issue(GAUGE)
    other_ring = DeviceKeys(signing.KeyRing.parse(signing.generate_keys_value("d1")))
    prefix, subject, mac = good.split(".")
    forged_subject = keys.issue("tenants/sh").split(".")[1]
    for key in (
        other_ring.issue(GAUGE),
        f"{prefix}.{forged_subject}.{mac}",
        good[:-2],
        good + "x",
        "grd_",
        "grk_abc_def",
        "grd_d1.!!.!!",
        "grd_nokey." + subject + "." + mac,
        "x" * 1000,
    ):
        assert keys.verify(key) is None, key


def test_keys_survive_a_ring_rollover(keys: DeviceKeys) -> None:
    old = signing.KeyRing.parse(signing.generate_keys_value("a1"))
    new_key = signing.generate_keys_value("b2")
    rolled = signing.KeyRing.parse(f"{new_key},a1:" + _encoded(old, "a1"))
    issued_before = DeviceKeys(old).issue(GAUGE)
    assert DeviceKeys(rolled).verify(issued_before) is not None


def _encoded(ring: signing.KeyRing, key_id: str) -> str:
    import base64

    return base64.b64encode(ring.keys[key_id]).decode()


def test_subjects_must_be_tenants_or_entities(keys: DeviceKeys) -> None:
    for subject in ("tenants/SH", "events/x", "tenants/sh/events/x", "tenants/sh/entities/"):
        with pytest.raises(ValueError):
            keys.issue(subject)
