"""Whose address a request comes from: X-Forwarded-For only through configured proxies."""

from __future__ import annotations

import pytest

from gateway.security.client_address import ClientAddresses, grpc_peer_host, parse_networks
from gateway.settings import GatewaySettings
from services.kit.components import NAMES as COMPONENTS

INGRESS = parse_networks(["10.0.0.0/8", "fd00::/8"])


def test_without_configured_proxies_the_header_is_ignored():
    clients = ClientAddresses()
    for forged in ("203.0.113.7", "203.0.113.7, 198.51.100.1", "garbage"):
        assert clients.resolve("127.0.0.1", forged) == "127.0.0.1"


def test_a_peer_that_is_not_a_proxy_cannot_speak_for_others():
    clients = ClientAddresses(INGRESS)
    assert clients.resolve("198.51.100.9", "203.0.113.7") == "198.51.100.9"


@pytest.mark.parametrize(
    ("forwarded", "client"),
    [
        ("203.0.113.7", "203.0.113.7"),
        # A client may prepend anything; the address the Ingress saw is the last one.
        ("1.2.3.4, 203.0.113.7", "203.0.113.7"),
        ("1.2.3.4,203.0.113.7, 10.1.2.3", "203.0.113.7"),  # two proxies in a row
        ("2001:db8::5, fd00::1", "2001:db8::5"),
        ("not-an-address, 203.0.113.7", "203.0.113.7"),
        ("203.0.113.7, not-an-address", "10.0.0.2"),  # garbage after the client: the proxy
        ("", "10.0.0.2"),
        (None, "10.0.0.2"),
        ("10.9.9.9", "10.9.9.9"),  # only proxies: the farthest one
    ],
)
def test_through_a_trusted_proxy_the_first_untrusted_hop_from_the_right_is_the_client(
    forwarded, client
):
    assert ClientAddresses(INGRESS).resolve("10.0.0.2", forwarded) == client


def test_a_missing_peer_is_unknown():
    assert ClientAddresses(INGRESS).resolve(None, "203.0.113.7") == "unknown"


def test_the_setting_refuses_what_is_not_a_cidr():
    addresses = {f"{name}_address": "127.0.0.1:9" for name in COMPONENTS}
    assert GatewaySettings(**addresses, trusted_proxies=["10.0.0.0/8"]).trusted_proxies
    assert GatewaySettings(**addresses).trusted_proxies == []
    with pytest.raises(ValueError, match=r"10\.0\.0\.0/33"):
        GatewaySettings(**addresses, trusted_proxies=["10.0.0.0/33"])


@pytest.mark.parametrize(
    ("peer", "host"),
    [
        ("ipv4:10.0.0.5:41234", "10.0.0.5"),
        ("ipv6:[::1]:5000", "::1"),
        ("unix:/tmp/socket", "unix:/tmp/socket"),
        ("", "unknown"),
    ],
)
def test_the_grpc_edge_keys_limits_by_the_peers_address(peer, host):
    assert grpc_peer_host(peer) == host
