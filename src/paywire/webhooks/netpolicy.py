"""Which addresses a live-mode webhook may reach: never loopback, private, link-local or reserved.

Checked twice: at registration (a clear 400) and on every connection, on the very address the
socket is about to connect to (aiohttp's `socket_factory`), so DNS rebinding between the two
checks gains nothing. The setting `allow_private_networks` (`PAYWIRE_ALLOW_PRIVATE_NETWORKS=1`)
lifts it; test mode is never checked.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from urllib.parse import urlsplit

from aiohappyeyeballs import AddrInfoType

from paywire.errors import InvalidRequest

ALLOW_ENV = "PAYWIRE_ALLOW_PRIVATE_NETWORKS"
BLOCKED_MARKER = "blocked by network policy"


class BlockedAddress(OSError):
    """The connection would reach a non-public address (raised before connecting)."""


def is_blocked(address: str) -> bool:
    """True for anything but a public unicast address (IPv4-mapped IPv6 is judged as IPv4)."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return True
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return not ip.is_global or ip.is_multicast


def guarded_socket(addr_info: AddrInfoType) -> socket.socket:
    """aiohttp `socket_factory`: refuse before connecting to a blocked address."""
    family, kind, proto, _name, sockaddr = addr_info
    if is_blocked(str(sockaddr[0])):
        raise BlockedAddress(f"{sockaddr[0]} is {BLOCKED_MARKER} (live mode)")
    return socket.socket(family=family, type=kind, proto=proto)


async def check_endpoint_url(url: str, *, livemode: bool, allow_private: bool) -> None:
    """At registration: a live endpoint whose host resolves to a blocked address is a 400.

    A name that does not resolve yet is accepted; the connect-time check still guards it.
    """
    if not livemode or allow_private:
        return
    host = urlsplit(url).hostname
    if not host:
        return
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        return
    for info in infos:
        address = str(info[4][0])
        if is_blocked(address):
            raise InvalidRequest(
                f"url resolves to {address}, a loopback, private, link-local or reserved address; "
                f"live-mode endpoints must be public (operators may set {ALLOW_ENV}=1)",
                param="url",
            )
