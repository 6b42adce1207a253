"""Where a download may connect: public internet addresses, plus what ``download.allow_hosts`` names.

Source URLs and everything a server sends back (pages, redirects, media and subtitle URLs)
are untrusted, and the workers that fetch them usually sit next to things an attacker wants:
a cloud's credential endpoint (169.254.169.254), a Ray dashboard, a Redis on loopback. So a
host is checked twice: by name, before every request and every redirect
(:meth:`EgressPolicy.check_url`: http(s) only, numeric hosts only in their canonical form,
every address the name resolves to public or allowed), and by address, on every TCP connect
the download process makes (:func:`install_connect_guard`), which also catches a name that
resolves differently the second time.
"""

from __future__ import annotations

import ipaddress
import re
import socket
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from curate.errors import PERMANENT, CurateError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

ALLOWED_SCHEMES = ("http", "https")
_HOSTNAME = re.compile(r"^(?=.{1,253}$)[a-z0-9_](?:[a-z0-9_-]{0,62})(?:\.[a-z0-9_-]{1,63})*$")
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_CGNAT = ipaddress.IPv4Network("100.64.0.0/10")


class EgressRefused(CurateError):
    """A request the policy refuses: permanent, since the same input will always ask for it."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(code, message, PERMANENT)


def parse_allow_entry(entry: str) -> IPNetwork | str:
    """One ``allow_hosts`` entry: an IP address or CIDR (a network), or a host name (lowercased)."""
    text = entry.strip().lower().strip("[]")
    try:
        return ipaddress.ip_network(text, strict=False)
    except ValueError:
        pass
    name = text.rstrip(".")
    if not _HOSTNAME.match(name) or _odd_ipv4(name):
        raise ValueError(f"allow_hosts entry {entry!r} is neither a host name, an IP address nor a CIDR")
    return name


def is_public(address: IPAddress) -> bool:
    """Whether ``address`` is on the public internet (addresses embedded in IPv6 are judged as IPv4)."""
    inner = _embedded_ipv4(address)
    if inner is not None:
        return is_public(inner)
    special = (address.is_private or address.is_loopback or address.is_link_local or address.is_multicast
               or address.is_reserved or address.is_unspecified or address in _CGNAT
               or getattr(address, "is_site_local", False))  # fmt: skip
    return address.is_global and not special


@dataclass(frozen=True)
class EgressPolicy:
    """Public addresses, plus the names and networks of ``download.allow_hosts``."""

    names: frozenset[str] = frozenset()
    networks: tuple[IPNetwork, ...] = ()

    @classmethod
    def from_entries(cls, entries: Iterable[str]) -> EgressPolicy:
        parsed = [parse_allow_entry(entry) for entry in entries]
        names = frozenset(p for p in parsed if isinstance(p, str))
        return cls(names, tuple(p for p in parsed if not isinstance(p, str)))

    def allows_address(self, address: IPAddress) -> bool:
        inner = _embedded_ipv4(address) or address
        return is_public(inner) or any(inner.version == net.version and inner in net for net in self.networks)

    def check_url(self, url: str) -> None:
        """Refuse ``url`` unless it is http(s) to an allowed host; raises :class:`EgressRefused`."""
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as error:
            raise EgressRefused("invalid_url", f"cannot parse URL: {error}") from None
        if parts.scheme.lower() not in ALLOWED_SCHEMES:
            raise EgressRefused("unsupported_scheme", f"{parts.scheme or 'no'} scheme: only http(s) URLs are fetched")
        if not parts.hostname:
            raise EgressRefused("invalid_url", "URL has no host")
        self.check_host(parts.hostname, port)

    def check_host(self, host: str, port: int | None = None) -> None:
        """Allowed by name, or every address it names or resolves to is public or allowed."""
        host = host.lower().rstrip(".")
        if host in self.names:
            return
        if _odd_ipv4(host):
            raise EgressRefused("egress_refused", f"host {host!r} is a numeric address in a non-canonical form")
        for address in _addresses(host, port):
            if not self.allows_address(address):
                raise EgressRefused(
                    "egress_refused", f"host {host!r} is {address}, not a public address (download.allow_hosts)"
                )


def install_connect_guard(policy: EgressPolicy, always_allowed: Iterable[str] = ()) -> None:
    """Refuse, for the rest of this process, every TCP connect to an address the policy does not allow.

    A Python audit hook sees the peer address of every ``socket.connect`` made by any library
    (yt-dlp, requests, urllib), after DNS, on every redirect. Names in the policy and in
    ``always_allowed`` (the proxy) are resolved once here and their addresses allowed. Hooks
    cannot be removed, so this is for the process that runs one download attempt only.
    """
    allowed: set[IPAddress] = set()
    for host in [*policy.names, *always_allowed]:
        allowed.update(_addresses(host, None, strict=False))

    def hook(event: str, args: tuple[Any, ...]) -> None:
        if event != "socket.connect" or args[0].family not in (socket.AF_INET, socket.AF_INET6):
            return
        address = ipaddress.ip_address(str(args[1][0]).split("%")[0])
        if address not in allowed and not policy.allows_address(address):
            raise EgressRefused("egress_refused", f"connection to {address} refused: not a public address (download.allow_hosts)")

    sys.addaudithook(hook)


def _addresses(host: str, port: int | None, *, strict: bool = True) -> list[IPAddress]:
    """``host`` as an IP literal, else every address DNS gives for it (none when it does not resolve:
    the request then fails on its own)."""
    try:
        return [ipaddress.ip_address(host.strip("[]").split("%")[0])]
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, port or 443, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        return []
    return [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]


def _odd_ipv4(host: str) -> bool:
    """Whether the C resolver reads ``host`` as an IPv4 address it does not spell canonically
    (``0x7f000001``, ``2130706433``, ``0177.0.0.1``, ``127.1``): never a real host name."""
    try:
        socket.inet_aton(host)
    except (OSError, UnicodeError, ValueError):
        return False
    try:
        ipaddress.IPv4Address(host)
    except ValueError:
        return True
    return False


def _embedded_ipv4(address: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one carries (mapped, 6to4, NAT64, IPv4-compatible), which is where it leads."""
    if address.version == 4:
        return None
    assert isinstance(address, ipaddress.IPv6Address)
    if address.ipv4_mapped or address.sixtofour:
        return address.ipv4_mapped or address.sixtofour
    if address in _NAT64 or (int(address) >> 32 == 0 and int(address) > 1):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None
