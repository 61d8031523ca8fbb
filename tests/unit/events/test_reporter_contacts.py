"""Reporter contacts are sealed per event in the events table and read back as typed."""

from __future__ import annotations

import pytest

from services.events.store.contacts import ReporterContacts
from services.kit.sealing import Sealer, SealingError


def test_a_contact_is_sealed_for_its_event_and_opens_only_there():
    contacts = ReporterContacts(Sealer.generate("k1"))
    stored = contacts.seal("ev_1", "13812345678")
    assert "13812345678" not in stored and stored.startswith("v1:k1:")
    assert contacts.open("ev_1", stored) == "13812345678"
    with pytest.raises(SealingError):
        contacts.open("ev_2", stored)  # copied into another row: refused


def test_empty_and_older_clear_values_pass_through():
    contacts = ReporterContacts(Sealer.generate("k1"))
    assert contacts.seal("ev_1", "") == ""
    assert contacts.open("ev_1", "") == ""
    assert contacts.open("ev_1", "13812345678") == "13812345678"  # written before sealing
