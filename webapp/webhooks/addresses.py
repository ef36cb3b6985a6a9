"""Where webhooks may be sent: public addresses only, unless the operator allows a network.

A webhook URL is chosen by an admin, but the host it names is resolved by DNS, which its owner
controls: without this guard a webhook could make the worker POST to the database, the metadata
service of a cloud (169.254.169.254) or anything else on the private network (SSRF). The URL is
checked when it is registered, and again at every delivery, where the worker connects to the
very address it checked (a name that resolves to a public address for the check and to
127.0.0.1 for the connection, "DNS rebinding", gets nowhere).
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit

__all__ = [
    "IPAddress",
    "IPNetwork",
    "RefusedAddressError",
    "Target",
    "check_url",
    "refusal_reason",
    "resolve_target",
]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

_SCHEMES = {"http": 80, "https": 443}
# IPv6 prefixes that embed an IPv4 address a packet may end up at.
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


class RefusedAddressError(ValueError):
    """Raised when a webhook URL is malformed or its host is not a permitted address."""


@dataclass(frozen=True)
class Target:
    """A checked webhook URL and the address to connect to.

    Attributes:
        url: The URL as registered.
        scheme: ``http`` or ``https``.
        host: The host name (or address literal) of the URL, without brackets.
        port: The TCP port.
        address: The resolved address, checked against the guard.
    """

    url: str
    scheme: str
    host: str
    port: int
    address: IPAddress


def check_url(url: str) -> SplitResult:
    """Check the form of a webhook URL: http(s), a host, no credentials, no fragment.

    Args:
        url: The URL.

    Returns:
        Its parts.

    Raises:
        RefusedAddressError: Saying what is wrong.
    """
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise RefusedAddressError(f"url is not a valid URL ({exc})") from None
    if parts.scheme not in _SCHEMES:
        raise RefusedAddressError("url must start with http:// or https://")
    if not parts.hostname:
        raise RefusedAddressError("url must name a host")
    if parts.username is not None or parts.password is not None:
        # They would be sent in the clear to anyone reading the console or the logs.
        raise RefusedAddressError("url must not contain credentials (user:password@)")
    if parts.fragment:
        raise RefusedAddressError("url must not contain a fragment (#...)")
    if port == 0:
        raise RefusedAddressError("url must not use port 0")
    if any(ord(char) < 0x21 or ord(char) == 0x7F for char in url):
        raise RefusedAddressError("url must not contain spaces or control characters")
    return parts


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def refusal_reason(address: IPAddress, allowed: Iterable[IPNetwork] = ()) -> str | None:
    """Return why webhooks may not go to ``address``, or None if they may.

    Refused: loopback, private, link-local, shared (CGNAT), reserved, multicast, unspecified and
    any other non-global address, of IPv4 and IPv6, including IPv4 addresses embedded in IPv6
    (``::ffff:127.0.0.1``, 6to4, NAT64); unless the address is in one of ``allowed``.

    Args:
        address: The address to check.
        allowed: The networks the operator allows (WEBHOOK_ALLOWED_NETWORKS).

    Returns:
        A reason such as ``"127.0.0.1 is a loopback address"``, or None.
    """
    allowed = tuple(allowed)
    candidates: list[IPAddress] = [address]
    if isinstance(address, ipaddress.IPv6Address) and (inner := _embedded_ipv4(address)):
        # The embedded address says where the packet really goes: judge (and name) it first.
        candidates.insert(0, inner)
    if any(candidate in network for candidate in candidates for network in allowed):
        return None
    for candidate in candidates:
        for kind, flag in (
            ("an unspecified", candidate.is_unspecified),
            ("a loopback", candidate.is_loopback),
            ("a link-local", candidate.is_link_local),
            ("a multicast", candidate.is_multicast),
            ("a reserved", candidate.is_reserved),
            ("a private", candidate.is_private),
            ("a non-public", not candidate.is_global),
        ):
            if flag:
                return f"{address} is {kind} address"
    return None


def resolve_target(
    url: str,
    allowed: Iterable[IPNetwork] = (),
    *,
    resolve: bool = True,
) -> Target:
    """Check a webhook URL and resolve its host to one permitted address.

    Every address the host resolves to must be permitted: a name with one public and one
    private record is refused, since either could be the one connected to.

    Args:
        url: The webhook URL.
        allowed: The networks the operator allows (WEBHOOK_ALLOWED_NETWORKS).
        resolve: Look the host name up (False only checks a literal address, if any).

    Returns:
        The target, with the first address the host resolved to.

    Raises:
        RefusedAddressError: If the URL is malformed, the host does not resolve, or an address
            it resolves to is refused.
    """
    parts = check_url(url)
    host = parts.hostname or ""
    port = parts.port or _SCHEMES[parts.scheme]
    allowed = tuple(allowed)
    try:
        addresses: list[IPAddress] = [ipaddress.ip_address(host)]
    except ValueError:
        if not resolve:
            raise RefusedAddressError("url host is not an address") from None
        addresses = _lookup(host, port)
    for address in addresses:
        reason = refusal_reason(address, allowed)
        if reason is not None:
            raise RefusedAddressError(
                f"url host {host} is refused: {reason} (not in WEBHOOK_ALLOWED_NETWORKS)"
            )
    return Target(url=url, scheme=parts.scheme, host=host, port=port, address=addresses[0])


def _lookup(host: str, port: int) -> list[IPAddress]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        # The resolver's own text ("[Errno -2] Name or service not known") means nothing to the
        # admin reading it in the console; say what to check instead.
        raise RefusedAddressError(
            f"url host {host} was not found: check the host name (it has no address in DNS,"
            " as this server sees it)"
        ) from None
    addresses: list[IPAddress] = []
    for _family, _type, _proto, _name, sockaddr in infos:
        # A scoped IPv6 address ("fe80::1%eth0") carries its zone after a percent sign.
        address = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise RefusedAddressError(f"url host {host} was not found: check the host name")
    return addresses
