"""Which worker endpoints the gateway will connect to, and to which address.

A node declares its endpoint on chain, so anyone who stakes the minimum chooses a URL the gateway
will call with other users' requests. :func:`check_endpoint` accepts only a base URL —
``https://host[:port]`` with an empty or ``/`` path, no userinfo, query or fragment (plain
``http`` only for a loopback worker on a devnet) — and resolves the host (``getaddrinfo`` in a
thread, off the event loop). Every address it resolves to must be a public one: loopback,
private (RFC 1918, shared 100.64/10, ULA), link-local, cloud metadata (169.254.169.254,
fd00:ec2::254), unspecified, multicast and reserved addresses are refused. An operator may allow
loopback and private workers (``allow_private_workers``, which the devnet sets); link-local,
metadata, unspecified, multicast and reserved addresses are refused even then.

The accepted :class:`WorkerEndpoint` pins the address it resolved: the gateway connects to that
IP with the original ``Host`` header (and SNI name for https), so a DNS answer that changes
between the check and the connection (a rebind) cannot redirect the request.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from registry.errors import AnchormlError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
#: ``(host, port) -> addresses``; the default is :func:`resolve_host` (getaddrinfo in a thread).
Resolver = Callable[[str, int], Awaitable[list[str]]]

#: Cloud instance metadata services (AWS, GCP, Azure, ... IPv4; AWS IPv6).
METADATA = frozenset(
    {ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254")}
)
_SHARED = ipaddress.ip_network("100.64.0.0/10")  # carrier-grade NAT: private in practice


class EndpointRejectedError(AnchormlError):
    """A worker endpoint the gateway will not call; the message says why (shown in
    ``/v1/nodes``)."""

    code = "invalid_endpoint"


@dataclass(frozen=True)
class WorkerEndpoint:
    """An accepted endpoint and the address every connection to it goes to."""

    url: str  # as declared on chain
    scheme: str
    host: str
    port: int
    ip: str  # pinned at validation

    @property
    def base(self) -> str:
        """The URL requests are sent to: the pinned IP, never the name."""
        ip = f"[{self.ip}]" if ":" in self.ip else self.ip
        return f"{self.scheme}://{ip}:{self.port}"

    @property
    def host_header(self) -> str:
        """The ``Host`` header the worker expects (its declared name and port)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = 443 if self.scheme == "https" else 80
        return host if self.port == default else f"{host}:{self.port}"

    @property
    def extensions(self) -> dict[str, Any]:
        """httpx request extensions: the TLS server name for https to a name (the certificate is
        checked against the name, not the pinned IP)."""
        if self.scheme == "https" and self.host != self.ip:
            return {"sni_hostname": self.host}
        return {}


def address_problem(ip: IPAddress, allow_private: bool) -> str | None:
    """Why the gateway must not connect to ``ip`` (None: it may)."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped  # ::ffff:127.0.0.1 is 127.0.0.1
    if ip in METADATA:
        return "a cloud metadata address"
    if ip.is_unspecified:
        return "an unspecified address"
    if ip.is_multicast:
        return "a multicast address"
    if ip.is_link_local:
        return "a link-local address"
    if ip.is_loopback:
        return None if allow_private else "a loopback address"
    if ip.is_private or (isinstance(ip, ipaddress.IPv4Address) and ip in _SHARED):
        # is_private also holds for reserved and documentation ranges: name those as such
        if ip.is_reserved:
            return "a reserved address"
        if allow_private and _is_lan(ip):
            return None
        return "a private address" if _is_lan(ip) else "a non-public address"
    if ip.is_reserved or not ip.is_global:
        return "a reserved address"
    return None


def _is_lan(ip: IPAddress) -> bool:
    """RFC 1918, shared (100.64/10) and unique-local (fc00::/7) addresses."""
    lans = ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "fc00::/7")
    return any(ip.version == n.version and ip in n for n in map(ipaddress.ip_network, lans))


async def resolve_host(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to (getaddrinfo, in the loop's thread pool).

    Raises:
        EndpointRejectedError: the name does not resolve.
    """
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        raise EndpointRejectedError(f"the host {host!r} does not resolve") from None
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def parse_endpoint(url: str) -> tuple[str, str, int]:
    """``url``'s scheme, host and port, when it is a base URL the gateway may call at all.

    Raises:
        EndpointRejectedError: naming the first problem found.
    """
    if not url:
        raise EndpointRejectedError("no endpoint declared")
    if len(url) > 2048 or any(c <= " " or c in "\\\x7f" for c in url):
        raise EndpointRejectedError("the endpoint holds whitespace, control or '\\' characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise EndpointRejectedError("the endpoint is not a valid URL") from None
    scheme = parts.scheme.lower()
    if scheme not in ("https", "http"):
        raise EndpointRejectedError("the endpoint must be an https URL")
    if "@" in parts.netloc:
        raise EndpointRejectedError("the endpoint must not hold userinfo (user@host)")
    if "?" in url:
        raise EndpointRejectedError("the endpoint must not hold a query")
    if "#" in url:
        raise EndpointRejectedError("the endpoint must not hold a fragment")
    if parts.path not in ("", "/"):
        raise EndpointRejectedError("the endpoint must be a base URL (no path)")
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise EndpointRejectedError("the endpoint names no host")
    return scheme, host, port or (443 if scheme == "https" else 80)


async def check_endpoint(
    url: str, *, allow_private: bool = False, resolve: Resolver = resolve_host
) -> WorkerEndpoint:
    """Accept ``url`` as a worker endpoint and pin the address to connect to (module doc).

    Args:
        url: the endpoint the node declared on chain.
        allow_private: accept loopback and private addresses, and plain http to loopback ones
            (a devnet's workers).
        resolve: the name resolver (getaddrinfo by default).

    Raises:
        EndpointRejectedError: naming why the gateway will not call it.
    """
    scheme, host, port = parse_endpoint(url)
    try:
        addresses = [host] if ipaddress.ip_address(host) else []
    except ValueError:
        addresses = await resolve(host, port)
    if not addresses:
        raise EndpointRejectedError(f"the host {host!r} does not resolve")
    ips = [ipaddress.ip_address(a.split("%", 1)[0]) for a in addresses]
    for ip in ips:  # every answer: a name may mix a public address with an internal one
        problem = address_problem(ip, allow_private)
        if problem is not None:
            raise EndpointRejectedError(f"the host {host!r} resolves to {problem} ({ip})")
    if scheme == "http" and not (allow_private and all(_loopback(ip) for ip in ips)):
        raise EndpointRejectedError(
            "the endpoint must be https (plain http only for loopback workers on a devnet)"
        )
    return WorkerEndpoint(url, scheme, host, port, str(ips[0]))


def _loopback(ip: IPAddress) -> bool:
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped.is_loopback
    return ip.is_loopback
