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


# the addresses Google's front ends connect from, when they proxy for a load balancer
# (cloud.google.com/load-balancing/docs/https, "X-Forwarded-For header"): such a front end appends the client's
# address and then its own
GOOGLE_FRONT_ENDS = (ipaddress.ip_network("130.211.0.0/22"), ipaddress.ip_network("35.191.0.0/16"))


def network_address(remote_addr: str | None, forwarded_for: str, proxies_in_front: int,
                    behind_front_end: bool) -> str | None:
    """The caller's network address. Behind Google's front end (Firebase), the one it wrote in X-Forwarded-For: the
    last (the first ones are whatever the client sent), or before it one more for each proxy of the deployer's own
    that appends its own caller's (PROXIES_IN_FRONT); a front end's own hop written after it is passed over, so that
    every caller does not count as the front end. Elsewhere the connection's peer."""
    if not behind_front_end:
        return remote_addr
    forwarded = [hop.strip() for hop in forwarded_for.split(",")]
    place = len(forwarded) - 1 - proxies_in_front
    while place > 0 and _front_end(forwarded[place]):
        place -= 1
    return (forwarded[place] if place >= 0 else "") or remote_addr


def _front_end(address: str) -> bool:
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(parsed in network for network in GOOGLE_FRONT_ENDS)


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
