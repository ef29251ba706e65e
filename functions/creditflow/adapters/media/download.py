"""Downloads with a size limit and a deadline over the whole transfer (not only per read), through httpx2.

Redirects are followed here, hop by hop (at most MAX_REDIRECTS), each hop held to the same schemes. Given `allow`,
each hop's host is resolved here and every address it resolves to must pass `allow` (`public_address` for URLs a
caller chose): the request then goes to the address that was checked (the name kept for Host and TLS), so neither a
redirect nor a second DNS answer reaches the metadata server, loopback or the private network."""

from __future__ import annotations

import ipaddress
import socket
import time
from collections.abc import Callable

import httpx2

from ..cpu_turns import away

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
MAX_REDIRECTS = 5
REDIRECTS = frozenset({301, 302, 303, 307, 308})


class DownloadFailed(Exception):
    """Not downloaded: what went wrong, and the HTTP status when there was one."""

    def __init__(self, reason: str, status: int | None = None) -> None:
        super().__init__(reason)
        self.reason, self.status = reason, status


NAT64 = ipaddress.IPv6Network("64:ff9b::/96")  # the well-known prefix: the IPv4 address is its last 32 bits
LOCAL_NAT64 = ipaddress.IPv6Network("64:ff9b:1::/48")  # RFC 8215's, for one network's own translators
COMPATIBLE = ipaddress.IPv6Network("::/96")  # deprecated IPv4-compatible addresses (::a.b.c.d)


def _carried(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address stands for, by a translation that delivers to it: mapped, IPv4-compatible,
    NAT64 (well-known prefix) or 6to4."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in NAT64 or address in COMPATIBLE:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return address.sixtofour


def public_address(address: IPAddress) -> bool:
    """An address on the public internet: not loopback, private, link-local (the metadata server), shared,
    reserved or multicast, nor one of those carried in an IPv6 address (IPv4-mapped or -compatible, NAT64, 6to4:
    a gateway on the way delivers to the address carried); nothing behind a network's own NAT64 prefix."""
    if isinstance(address, ipaddress.IPv6Address):
        if address in LOCAL_NAT64:
            return False
        carried = _carried(address)
        if carried is not None:
            address = carried
    return address.is_global and not address.is_multicast


def _pinned(url: httpx2.URL, allow: Callable[[IPAddress], bool]
            ) -> tuple[httpx2.URL, dict[str, str], dict[str, str]]:
    """The URL with its host replaced by a checked address of it, the Host header and the TLS name to send."""
    host = url.host
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as error:
        raise DownloadFailed(f"its host does not resolve ({type(error).__name__})") from error
    addresses = [ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in found]
    if not addresses or not all(allow(address) for address in addresses):
        raise DownloadFailed(f"its host {host[:100]} is not a public address")
    headers = {"Host": url.netloc.decode("ascii")}
    extensions = {"sni_hostname": host} if url.scheme == "https" else {}
    return url.copy_with(host=str(addresses[0])), headers, extensions


def download(url: str, *, timeout: float, max_bytes: int, schemes: tuple[str, ...] = ("https://",),
             allow: Callable[[IPAddress], bool] | None = None) -> bytes:
    try:
        with away(), httpx2.Client(timeout=timeout, follow_redirects=False, trust_env=allow is None) as http:
            for _ in range(MAX_REDIRECTS + 1):
                if not url.startswith(schemes):
                    raise DownloadFailed(f"the URL is not {' or '.join(s.rstrip(':/') for s in schemes)}")
                target, headers, extensions = httpx2.URL(url), dict[str, str](), dict[str, str]()
                if allow is not None:
                    target, headers, extensions = _pinned(target, allow)
                with http.stream("GET", target, headers=headers, extensions=extensions) as reply:
                    location = reply.headers.get("location")
                    if reply.status_code in REDIRECTS and location:
                        url = str(httpx2.URL(url).join(location))
                        continue
                    return _body(reply, timeout, max_bytes)
            raise DownloadFailed(f"it redirected more than {MAX_REDIRECTS} times")
    except httpx2.HTTPError as error:  # timeouts, refused or cut connections
        raise DownloadFailed(f"it could not be downloaded: {type(error).__name__}") from error
    except (httpx2.InvalidURL, ValueError) as error:  # a URL httpx2 cannot parse (a bad port, IPv6 literal, IDNA name)
        raise DownloadFailed(f"it is not a URL that can be fetched: {error}") from error


def _body(reply: httpx2.Response, timeout: float, max_bytes: int) -> bytes:
    if reply.status_code != 200:
        raise DownloadFailed(f"the URL answered {reply.status_code}", reply.status_code)
    declared = reply.headers.get("content-length")
    if declared and declared.isascii() and declared.isdigit() and int(declared) > max_bytes:
        raise DownloadFailed(f"it is {declared} bytes, over the {max_bytes} accepted")
    data, deadline = bytearray(), time.monotonic() + timeout
    for chunk in reply.iter_bytes():
        data += chunk
        if time.monotonic() > deadline:
            raise DownloadFailed(f"it took over {timeout:g} s")
        if len(data) > max_bytes:
            raise DownloadFailed(f"it is over the {max_bytes} bytes accepted")
    return bytes(data)
