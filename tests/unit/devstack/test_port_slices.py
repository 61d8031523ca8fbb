"""Test sessions side by side pick ports from disjoint slices of the range, so one
session's pick is never another's between the pick and a service's bind."""

from __future__ import annotations

import pytest

from devstack import stack


def test_slices_are_disjoint_and_ports_come_from_this_sessions_slice(monkeypatch):
    monkeypatch.setenv(stack.PORT_SLICE_VARIABLE, "0/2")
    low = stack._port_slice(20_000, 32_000)
    monkeypatch.setenv(stack.PORT_SLICE_VARIABLE, "1/2")
    high = stack._port_slice(20_000, 32_000)
    assert low == (20_000, 26_000) and high == (26_000, 32_000)
    top = stack._ephemeral_low()
    picked = stack.free_ports(20)
    assert len(set(picked)) == 20
    assert all(top - 6_000 <= port < top for port in picked)


def test_without_a_slice_the_whole_range_is_used(monkeypatch):
    monkeypatch.delenv(stack.PORT_SLICE_VARIABLE, raising=False)
    assert stack._port_slice(20_000, 32_000) == (20_000, 32_000)


@pytest.mark.parametrize("given", ["2/2", "x/2", "1", "-1/2"])
def test_a_bad_slice_is_named(monkeypatch, given):
    monkeypatch.setenv(stack.PORT_SLICE_VARIABLE, given)
    with pytest.raises(ValueError, match="GRASSROOTS_PORT_SLICE is k/n"):
        stack._port_slice(20_000, 32_000)
