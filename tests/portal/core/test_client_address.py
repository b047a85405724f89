"""The client's address: the peer's, or what a configured trusted proxy forwarded (portal.core.clients).

The same function serves every HTTP and websocket scope (ClientAddressMiddleware); over the real
server it is exercised by tests/portal/livestats/test_browser_socket.py and test_forwarded_addresses.py.
"""

from __future__ import annotations

import pytest

from portal.core.clients import address_bucket, client_address


def scope(peer: str | None, **headers: str) -> dict:
    return {
        "type": "http",
        "client": (peer, 50000) if peer else None,
        "headers": [(k.replace("_", "-").lower().encode(), v.encode()) for k, v in headers.items()],
    }


def test_without_trusted_proxies_forwarded_headers_are_ignored(settings):
    settings.SOULSAI_TRUSTED_PROXIES = []
    assert client_address(scope("127.0.0.1", X_Forwarded_For="203.0.113.9")) == "127.0.0.1"
    assert client_address(scope("198.51.100.1", X_Real_IP="203.0.113.9")) == "198.51.100.1"
    assert client_address(scope(None)) == "unknown"
    assert client_address(scope("::ffff:198.51.100.1")) == "198.51.100.1"


@pytest.mark.parametrize(
    ("peer", "headers", "address"),
    [
        ("10.0.0.2", {"X_Forwarded_For": "203.0.113.9"}, "203.0.113.9"),
        (
            "10.0.0.2",
            {"X_Forwarded_For": "6.6.6.6, 203.0.113.9"},
            "203.0.113.9",
        ),  # the left is the visitor's claim
        ("10.0.0.2", {"X_Forwarded_For": "203.0.113.9, 10.0.0.7"}, "203.0.113.9"),  # two trusted hops
        ("10.0.0.2", {"X_Forwarded_For": "10.0.0.5, 10.0.0.7"}, "10.0.0.5"),  # only proxies: the farthest
        ("10.0.0.2", {"X_Forwarded_For": "garbage, 10.0.0.7"}, "10.0.0.7"),  # garbled: the last trusted hop
        ("10.0.0.2", {"X_Real_IP": "203.0.113.9"}, "203.0.113.9"),
        ("10.0.0.2", {}, "10.0.0.2"),
        ("198.51.100.1", {"X_Forwarded_For": "203.0.113.9"}, "198.51.100.1"),  # not a trusted proxy
        ("10.0.0.2", {"X_Forwarded_For": "2001:db8::1"}, "2001:db8::1"),
        (
            "10.0.0.2",
            {"X_Forwarded_For": "203.0.113.9:41234, [2001:db8::1]:443"},
            "2001:db8::1",
        ),  # with ports
    ],
)
def test_behind_a_trusted_proxy_the_nearest_untrusted_forwarded_address_is_the_clients(
    settings, peer, headers, address
):
    settings.SOULSAI_TRUSTED_PROXIES = ["10.0.0.0/8"]
    assert client_address(scope(peer, **headers)) == address


def test_caps_count_an_ipv6_slash_64_as_one_address():
    assert address_bucket("2001:db8::1") == address_bucket("2001:db8::ffff:1") == "2001:db8::/64"
    assert address_bucket("203.0.113.9") == "203.0.113.9"
    assert address_bucket("unknown") == "unknown"
