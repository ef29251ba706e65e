"""Who is calling: a verified user (or admin) identity."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from .accounts import require_uid


@dataclass(frozen=True)
class Caller:
    """Who is calling, as the identity provider vouches."""

    uid: str
    admin: bool = False
    email: str | None = None
    email_verified: bool = False

    def __post_init__(self) -> None:
        require_uid(self.uid)  # a token may name any uid; the platform serves only those its stores can hold


def network_address(remote_addr: str | None, forwarded_for: str, proxies_in_front: int,
                    behind_front_end: bool) -> str | None:
    """The caller's network address. Behind Google's front end (Firebase), the one it wrote in X-Forwarded-For: the
    last (the first ones are whatever the client sent), or before it one more for each proxy of the deployer's own
    that appends its own caller's (PROXIES_IN_FRONT); elsewhere the connection's peer."""
    if not behind_front_end:
        return remote_addr
    forwarded = [hop.strip() for hop in forwarded_for.split(",")]
    return (forwarded[-1 - proxies_in_front] if len(forwarded) > proxies_in_front else "") or remote_addr


IPV6_NETWORK_PREFIX = 64  # what one IPv6 host or home network holds at least (SLAAC's subnet, a phone's whole prefix)


def network_of(address: str) -> str:
    """The network an address counts for: an IPv4 address itself (written as IPv6 too, `::ffff:a.b.c.d`), and for
    IPv6 its /64, since one host holds all of one (its privacy addresses rotate through it unasked); anything else,
    which no front end writes, as it is."""
    try:
        parsed = ipaddress.ip_address(address.strip())
    except ValueError:
        return address
    if isinstance(parsed, ipaddress.IPv6Address) and parsed.ipv4_mapped is not None:
        parsed = parsed.ipv4_mapped
    if isinstance(parsed, ipaddress.IPv4Address):
        return str(parsed)
    return str(ipaddress.IPv6Network((parsed, IPV6_NETWORK_PREFIX), strict=False))
