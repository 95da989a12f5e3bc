"""SSRF guard for merchant callback URLs: decide where a callback may go, once, and pin it.

A ``dlrUrl`` is typed in by a merchant, so without a guard it is a way to make our worker POST to
cloud metadata (169.254.169.254), Redis on localhost, or the admin panel on 10.x. Checking the URL
string is not enough: ``getaddrinfo`` turns ``2130706433``, ``0x7f.1`` and ``0177.0.0.1`` into
127.0.0.1; a public-looking name can resolve to a private address (and to a different one on the
next lookup: DNS rebinding); Python's ``ipaddress`` calls NAT64 ``64:ff9b::7f00:1`` and 6to4
``2002:7f00:1::`` *global*. So the guard:

* accepts only ``http``/``https`` URLs with a host, no userinfo (``http://a@127.0.0.1/`` reads as
  a public name to humans and some parsers) and a host that is either a valid DNS name or a
  canonical dotted-quad / bracketed IPv6 literal;
* resolves the name once and refuses if *any* address is not globally routable (an attacker
  controls which of several records a client picks), unwrapping IPv4-mapped and NAT64 addresses
  to check the IPv4 inside;
* returns a :class:`PinnedTarget` holding the checked IP, which the caller connects to directly
  (no second lookup, so no rebinding window).

Refusals raise ``ValidationError(Code.CALLBACK_URL_REFUSED)``: final, the URL will never be
acceptable. A name that does not resolve right now raises :class:`ResolutionError` instead, because
DNS outages are temporary and the callback should be retried.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Callable, Collection
from dataclasses import dataclass
from urllib.parse import urlsplit

from worker.catalogue import Code
from worker.errors import HexavoxError, ValidationError

__all__ = ["DEFAULT_CALLBACK_PORTS", "PinnedTarget", "ResolutionError", "Resolver", "check_literal", "resolve_public",
           "is_forbidden_ip", "system_resolver"]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
#: ``(host, port) -> ["ip", ...]``; injectable so tests never touch real DNS.
Resolver = Callable[[str, int], list[str]]

_MAX_URL_LENGTH = 2048
_DEFAULT_PORTS = {"http": 80, "https": 443}
#: Ports a callback may go to unless configured otherwise (HEXAVOX_CALLBACK_PORTS): a merchant's web server, not
#: whatever else listens on a public host (SMTP relays, databases, admin consoles).
DEFAULT_CALLBACK_PORTS: frozenset[int] = frozenset({80, 443})
_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
#: WHATWG URL parsing treats a host whose last label is numeric (decimal or 0x-hex) as an IPv4 address.
_NUMERIC_LABEL = re.compile(r"^(?:0x[0-9a-f]*|[0-9]+)$")

_V4 = ipaddress.IPv4Network
_V6 = ipaddress.IPv6Network

#: IPv4 ranges that are never a merchant's public endpoint. Listed explicitly rather than trusting
#: ``is_global`` alone, which (3.11) still calls multicast global.
_FORBIDDEN_V4: tuple[tuple[ipaddress.IPv4Network, str], ...] = (
    (_V4("0.0.0.0/8"), "'this network' (0.0.0.0/8)"),
    (_V4("10.0.0.0/8"), "private (10/8)"),
    (_V4("100.64.0.0/10"), "carrier-grade NAT (100.64/10)"),
    (_V4("127.0.0.0/8"), "loopback"),
    (_V4("169.254.0.0/16"), "link-local / cloud metadata (169.254/16)"),
    (_V4("172.16.0.0/12"), "private (172.16/12)"),
    (_V4("192.0.0.0/24"), "IETF protocol assignments (192.0.0/24)"),
    (_V4("192.0.2.0/24"), "documentation (TEST-NET-1)"),
    (_V4("192.88.99.0/24"), "6to4 relay anycast"),
    (_V4("192.168.0.0/16"), "private (192.168/16)"),
    (_V4("198.18.0.0/15"), "benchmarking (198.18/15)"),
    (_V4("198.51.100.0/24"), "documentation (TEST-NET-2)"),
    (_V4("203.0.113.0/24"), "documentation (TEST-NET-3)"),
    (_V4("224.0.0.0/4"), "multicast"),
    (_V4("240.0.0.0/4"), "reserved / broadcast"),
)

#: IPv6 ranges refused outright. IPv4-mapped and NAT64 well-known prefix are handled before this
#: table (their embedded IPv4 is checked); everything outside 2000::/3 is refused after it.
_FORBIDDEN_V6: tuple[tuple[ipaddress.IPv6Network, str], ...] = (
    (_V6("::/128"), "unspecified (::)"),
    (_V6("::1/128"), "loopback (::1)"),
    (_V6("::/96"), "IPv4-compatible (deprecated)"),
    (_V6("64:ff9b:1::/48"), "local-use NAT64 (64:ff9b:1::/48)"),
    (_V6("100::/64"), "discard-only (100::/64)"),
    (_V6("2001::/32"), "Teredo (2001::/32)"),
    (_V6("2001::/23"), "IETF protocol assignments (2001::/23)"),
    (_V6("2001:db8::/32"), "documentation (2001:db8::/32)"),
    (_V6("2002::/16"), "6to4 (2002::/16): tunnels to an embedded IPv4, deprecated by RFC 7526"),
    (_V6("3fff::/20"), "documentation (3fff::/20)"),
    (_V6("5f00::/16"), "SRv6 SIDs (5f00::/16)"),
    (_V6("fc00::/7"), "unique-local (fc00::/7)"),
    (_V6("fe80::/10"), "link-local (fe80::/10)"),
    (_V6("fec0::/10"), "site-local (deprecated)"),
    (_V6("ff00::/8"), "multicast"),
)
_IPV4_MAPPED = _V6("::ffff:0:0/96")
_NAT64_WELL_KNOWN = _V6("64:ff9b::/96")
_GLOBAL_UNICAST = _V6("2000::/3")
_LOOPBACK_V4 = _V4("127.0.0.0/8")
_LOOPBACK_V6 = ipaddress.IPv6Address("::1")


class ResolutionError(HexavoxError):
    """The callback host did not resolve right now; retry later rather than refuse for good."""


@dataclass(frozen=True)
class PinnedTarget:
    """Where a vetted callback goes: the original name (for ``Host`` and TLS) and the IP to connect to."""

    scheme: str
    host: str
    port: int
    path_and_query: str
    ip: str

    @property
    def host_header(self) -> str:
        """``Host`` value: the merchant's name, with the port only when it is not the scheme's default."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if _DEFAULT_PORTS[self.scheme] == self.port else f"{host}:{self.port}"

    @property
    def connect_url(self) -> str:
        """The URL to request: same scheme, port and path, but the pinned IP in place of the name."""
        ip = f"[{self.ip}]" if ":" in self.ip else self.ip
        return f"{self.scheme}://{ip}:{self.port}{self.path_and_query}"


def _refuse(reason: str) -> ValidationError:
    return ValidationError(Code.CALLBACK_URL_REFUSED, reason, field="dlrUrl")


def system_resolver(host: str, port: int) -> list[str]:
    """Every address ``getaddrinfo`` gives for a TCP connection to ``host:port``, in its preferred order."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError) as exc:
        raise ResolutionError(f"cannot resolve {host!r}: {exc}") from exc
    return [str(info[4][0]) for info in infos]


def is_forbidden_ip(ip: IPAddress, *, allow_private: bool = False) -> str | None:
    """Why ``ip`` may not receive a callback, or ``None`` when it is a public unicast address.

    ``allow_private`` (tests only) admits loopback and nothing else: a test server on 127.0.0.1 is
    the only private destination a test needs, and anything wider would let a misconfigured
    production worker reach the metadata service.
    """
    if allow_private and (ip in _LOOPBACK_V4 if ip.version == 4 else ip == _LOOPBACK_V6):
        return None
    if isinstance(ip, ipaddress.IPv4Address):
        return _forbidden_v4(ip)
    return _forbidden_v6(ip, allow_private=allow_private)


def _forbidden_v4(ip: ipaddress.IPv4Address) -> str | None:
    for network, reason in _FORBIDDEN_V4:
        if ip in network:
            return reason
    if not ip.is_global or ip.is_multicast or ip.is_reserved:
        return "not globally routable"
    return None


def _forbidden_v6(ip: ipaddress.IPv6Address, *, allow_private: bool) -> str | None:
    if ip.scope_id:
        return "IPv6 zone index"
    mapped = ip.ipv4_mapped
    if mapped is not None:
        # ::ffff:a.b.c.d is how an IPv6 socket reaches IPv4 a.b.c.d: judge it as that address.
        inner = is_forbidden_ip(mapped, allow_private=allow_private)
        return None if inner is None else f"IPv4-mapped {inner}"
    if ip in _NAT64_WELL_KNOWN:
        # The NAT64 gateway forwards to the embedded IPv4; loopback there is the gateway's, so never allowed.
        inner = _forbidden_v4(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
        return None if inner is None else f"NAT64 of {inner}"
    for network, reason in _FORBIDDEN_V6:
        if ip in network:
            return reason
    if ip not in _GLOBAL_UNICAST or not ip.is_global or ip.is_multicast or ip.is_reserved:
        return "not global unicast"
    return None


def _canonical(ip: IPAddress) -> str:
    """The address to pin: an IPv4-mapped address is connected to as plain IPv4."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    return str(ip)


def _literal_host(hostname: str, bracketed: bool) -> IPAddress | None:
    """Parse ``hostname`` as an IP literal, refusing every spelling but the canonical ones.

    Returns ``None`` for a DNS name. ``127.1``, ``2130706433``, ``0x7f.1`` and ``0177.0.0.1`` are all
    127.0.0.1 to ``inet_aton``; refusing them up front means no resolver quirk can smuggle one in.
    """
    if bracketed:
        if "%" in hostname:
            raise _refuse("IPv6 zone index in host")
        try:
            return ipaddress.IPv6Address(hostname)
        except ValueError:
            raise _refuse("bracketed host is not an IPv6 address") from None
    try:
        v4 = ipaddress.IPv4Address(hostname)  # refuses leading zeros (octal look-alikes) since 3.9.5
    except ValueError:
        v4 = None
    if v4 is not None and str(v4) == hostname:
        return v4
    if _NUMERIC_LABEL.match(hostname.rstrip(".").rsplit(".", 1)[-1]):
        raise _refuse("host is a non-canonical IPv4 address (decimal, octal, hex or short form)")
    return None


def _check_dns_name(hostname: str) -> str:
    """A hostname must be plain LDH labels (IDNs as punycode); returns it without a trailing dot."""
    name = hostname[:-1] if hostname.endswith(".") else hostname
    if not name or len(name) > 253:
        raise _refuse("host is empty or too long")
    if not all(_LABEL.match(label) for label in name.split(".")):
        raise _refuse("host is not a valid DNS name")
    try:
        socket.inet_aton(name)
    except OSError:
        return name
    raise _refuse("host is a non-canonical IPv4 address")


def _split(url: str) -> tuple[str, bool, str, int, str]:
    """Syntax checks: scheme, no userinfo, a host, a port. Returns (scheme, bracketed, hostname, port, path)."""
    if len(url) > _MAX_URL_LENGTH:
        raise _refuse("URL too long")
    if not url.isascii() or any(ch.isspace() or ord(ch) < 0x21 or ord(ch) == 0x7F for ch in url):
        raise _refuse("URL contains whitespace, control or non-ASCII characters (use punycode / percent-encoding)")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise _refuse(f"malformed URL: {exc}") from None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS:
        raise _refuse("only http and https callback URLs are allowed")
    if "@" in parts.netloc or parts.username is not None or parts.password is not None:
        raise _refuse("credentials (userinfo) in the callback URL are not allowed")
    if "\\" in parts.netloc:
        raise _refuse("backslash in the URL authority")
    hostname = parts.hostname or ""
    if not hostname:
        raise _refuse("callback URL has no host")
    if port is None:
        port = _DEFAULT_PORTS[scheme]
    if port == 0:
        raise _refuse("port 0 is not a destination")
    path = parts.path or "/"
    if parts.query:
        path = f"{path}?{parts.query}"
    # Userinfo is refused above, so the authority starts with the host: '[' means an IPv6 literal.
    return scheme, parts.netloc.startswith("["), hostname, port, path


def _check_port(port: int, allowed_ports: Collection[int] | None, allow_private: bool) -> None:
    """Only the allowed ports; the test-only loopback mode (``allow_private``) admits any, for local servers."""
    if not allow_private and port not in (DEFAULT_CALLBACK_PORTS if allowed_ports is None else allowed_ports):
        raise _refuse(f"port {port} is not an allowed callback port")


def check_literal(url: str, *, allow_private: bool = False, allowed_ports: Collection[int] | None = None) -> None:
    """Every check that needs no DNS: syntax, port, and an IP-literal host's address. Run at intake, so a
    ``dlrUrl`` that can never be called is refused there (E819) rather than failing silently at callback time."""
    _, bracketed, hostname, port, _ = _split(url)
    _check_port(port, allowed_ports, allow_private)
    literal = _literal_host(hostname, bracketed)
    if literal is None:
        _check_dns_name(hostname)
        return
    reason = is_forbidden_ip(literal, allow_private=allow_private)
    if reason is not None:
        raise _refuse(f"host address is {reason}")


def resolve_public(
    url: str,
    *,
    allow_private: bool = False,
    resolver: Resolver | None = None,
    allowed_ports: Collection[int] | None = None,
) -> PinnedTarget:
    """Vet ``url`` and return the one IP the callback must connect to.

    Raises ``ValidationError(Code.CALLBACK_URL_REFUSED)`` for a URL that may never be called, and
    :class:`ResolutionError` when its name does not resolve at the moment. ``allowed_ports`` defaults to
    :data:`DEFAULT_CALLBACK_PORTS`.
    """
    check_literal(url, allow_private=allow_private, allowed_ports=allowed_ports)
    scheme, bracketed, hostname, port, path = _split(url)
    literal = _literal_host(hostname, bracketed)
    if literal is not None:
        return PinnedTarget(scheme, str(literal), port, path, _canonical(literal))

    name = _check_dns_name(hostname)
    addresses = (resolver or system_resolver)(name, port)
    if not addresses:
        raise ResolutionError(f"{name!r} resolved to no addresses")
    parsed: list[IPAddress] = []
    for raw in addresses:
        try:
            ip = ipaddress.ip_address(raw)
        except ValueError:
            raise _refuse(f"{name!r} resolved to something that is not an IP address") from None
        reason = is_forbidden_ip(ip, allow_private=allow_private)
        if reason is not None:
            # Any bad record refuses the URL: which record a client uses is the attacker's choice.
            raise _refuse(f"{name!r} resolves to a forbidden address: {reason}")
        parsed.append(ip)
    return PinnedTarget(scheme, name, port, path, _canonical(parsed[0]))
