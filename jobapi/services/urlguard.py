"""The API's private-address guard for submitted URLs.

Addresses are classified by the crawler's own guard
(`crawler.middlewares.addressguard.address_reason`), so a URL the API accepts is
one the crawler fetches; this module adds what a submission needs on top.

A URL whose host is, or resolves to, a private, loopback, link-local, CGNAT
(100.64.0.0/10), metadata (169.254.169.254), multicast, reserved or unspecified
address is refused with a 422 naming the address and the setting that allows it
(`ALLOW_PRIVATE_NETWORKS=1`). IPv4 written as one decimal, hex or octal number
(`2130706433`, `0x7f000001`, `0177.0.0.1`, `127.1`) is read the way
`inet_aton` reads it, and IPv4-mapped, 6to4 and NAT64 IPv6 addresses are checked
as the IPv4 address they carry.

Host names are resolved with a short timeout; a name that does not resolve is
let through, because the crawler's own guard checks every address it connects
to (DNS can change between submission and fetch, so this check is a first line,
not the only one).
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable

import anyio

from crawler.middlewares.addressguard import address_reason
from jobapi.errors import Unprocessable

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_NAT64 = ipaddress.ip_network("64:ff9b::/96")
RESOLVE_TIMEOUT = 2.0
RESOLVE_CONCURRENCY = 16


def parse_ipv4_loose(host: str) -> ipaddress.IPv4Address | None:
    """Read `host` as `inet_aton` would (1 to 4 parts, decimal, 0x hex or 0 octal)."""
    parts = host.split(".")
    if not 1 <= len(parts) <= 4 or any(not p for p in parts):
        return None
    numbers = []
    for part in parts:
        try:
            if part.lower().startswith("0x"):
                numbers.append(int(part[2:], 16) if len(part) > 2 else 0)
            elif len(part) > 1 and part.startswith("0"):
                numbers.append(int(part, 8))
            elif part.isdigit():
                numbers.append(int(part, 10))
            else:
                return None
        except ValueError:
            return None
    *head, last = numbers
    if any(n > 255 for n in head) or last >= 256 ** (4 - len(head)):
        return None
    value = 0
    for n in head:
        value = value * 256 + n
    value = value * 256 ** (4 - len(head)) + last
    return ipaddress.IPv4Address(value)


def parse_host(host: str) -> IPAddress | None:
    """The address a URL host spells, or None for a name."""
    bare = host.strip("[]")
    try:
        return ipaddress.ip_address(bare.split("%", 1)[0])
    except ValueError:
        return parse_ipv4_loose(bare)


_PHRASES = {
    "metadata": "a cloud metadata address", "loopback": "a loopback address",
    "link-local": "a link-local address", "cgnat": "a shared (CGNAT) address",
    "multicast": "a multicast address", "unspecified": "an unspecified address",
    "private": "a private address", "reserved": "a reserved address",
}


def classify(address: IPAddress) -> str | None:
    """Why an address is not public (None when it is): the crawler's own rules."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is None and address in _NAT64:
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is not None:
            return classify(embedded)
    reason = address_reason(address)
    return None if reason is None else _PHRASES.get(reason, f"a {reason} address")


def _refuse(field: str, url: str, address: IPAddress, reason: str) -> Unprocessable:
    return Unprocessable(
        f"{field}: {url[:200]} points at {address}, {reason}.",
        field=field,
        hint="Crawling private networks is off; an operator can allow it with "
        "ALLOW_PRIVATE_NETWORKS=1.",
    )


async def resolve(host: str, port: int, *, timeout: float = RESOLVE_TIMEOUT) -> list[IPAddress]:
    """The addresses `host` resolves to, in the resolver's order ([] if none in `timeout`)."""
    with anyio.move_on_after(timeout):
        try:
            infos = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError):
            return []
        return [ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in infos]
    return []


async def check_urls(urls: Iterable[tuple[str, str, str, int]]) -> None:
    """Refuse any (field, url, host, port) whose host is or resolves to a non-public address.

    Raises:
        Unprocessable: the first refused URL, naming its field, address and the setting.
    """
    names: dict[tuple[str, int], tuple[str, str]] = {}
    for field, url, host, port in urls:
        address = parse_host(host)
        if address is not None:
            reason = classify(address)
            if reason:
                raise _refuse(field, url, address, reason)
        else:
            names.setdefault((host.lower(), port), (field, url))
    if not names:
        return
    limiter = anyio.Semaphore(RESOLVE_CONCURRENCY)
    refused: list[Unprocessable] = []

    async def one(host: str, port: int, field: str, url: str) -> None:
        async with limiter:
            for address in await resolve(host, port):
                reason = classify(address)
                if reason:
                    refused.append(_refuse(field, url, address, reason))
                    return

    async with anyio.create_task_group() as tg:
        for (host, port), (field, url) in names.items():
            tg.start_soon(one, host, port, field, url)
    if refused:
        raise refused[0]
