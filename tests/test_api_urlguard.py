"""The API's private-address guard: address spellings and classification (pure logic)."""

from __future__ import annotations

import ipaddress

import anyio
import pytest

from jobapi.errors import Unprocessable
from jobapi.services.urlguard import check_urls, classify, parse_host, parse_ipv4_loose


@pytest.mark.parametrize(("host", "address"), [
    ("2130706433", "127.0.0.1"), ("0x7f000001", "127.0.0.1"), ("0177.0.0.1", "127.0.0.1"),
    ("127.1", "127.0.0.1"), ("0x7f.1", "127.0.0.1"), ("10.0.0.1", "10.0.0.1"),
    ("017700000001", "127.0.0.1"),
])
def test_ipv4_spellings_are_read_like_inet_aton(host, address):
    assert parse_ipv4_loose(host) == ipaddress.IPv4Address(address)


@pytest.mark.parametrize("host", ["example.org", "1.2.3.4.5", "256.1.1.1", "08.1.1.1", "1..2",
                                  "4294967296", ""])
def test_names_and_impossible_numbers_are_not_addresses(host):
    assert parse_ipv4_loose(host) is None


@pytest.mark.parametrize(("host", "words"), [
    ("127.0.0.1", "loopback"), ("[::1]", "loopback"), ("10.1.2.3", "private"),
    ("192.168.0.1", "private"), ("172.16.5.4", "private"), ("169.254.1.1", "link-local"),
    ("169.254.169.254", "metadata"), ("100.64.0.1", "CGNAT"), ("0.0.0.0", "unspecified"),
    ("224.0.0.1", "multicast"), ("[::ffff:10.0.0.1]", "private"),
    ("[2002:a00:1::]", "private"), ("[64:ff9b::7f00:1]", "loopback"), ("[fe80::1]", "link-local"),
    ("[fc00::1]", "private"), ("240.0.0.1", "reserved"),
])
def test_non_public_addresses_are_named(host, words):
    reason = classify(parse_host(host))
    assert reason is not None and words in reason


@pytest.mark.parametrize("host", ["8.8.8.8", "93.184.216.34", "[2606:4700::1111]"])
def test_public_addresses_pass(host):
    assert classify(parse_host(host)) is None


def test_check_urls_names_the_field_and_resolves_names():
    with pytest.raises(Unprocessable) as caught:
        anyio.run(check_urls, [("start_urls[0]", "http://8.8.8.8/", "8.8.8.8", 80),
                               ("start_urls[1]", "http://localhost:9/", "localhost", 9)])
    assert caught.value.field == "start_urls[1]"
    assert "127.0.0.1" in caught.value.message or "::1" in caught.value.message
    # A name that does not resolve is left to the crawler's guard.
    anyio.run(check_urls, [("start_urls[0]", "http://nowhere.invalid/", "nowhere.invalid", 80)])
