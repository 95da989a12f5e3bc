"""SSRF guard for callback URLs (docs/reliability.md S2): every hostile URL refused, public ones pinned.

No test here touches real DNS: names go through a stub resolver that fails the test if it is asked
about a host the row did not expect (an IP literal must never reach the resolver).
"""

from __future__ import annotations

import ipaddress

import pytest

from worker.callbacks.egress import PinnedTarget, ResolutionError, is_forbidden_ip, resolve_public
from worker.catalogue import Code
from worker.errors import ValidationError

PUBLIC_V4 = "93.184.215.14"
PUBLIC_V6 = "2606:2800:21f:cb07:6820:80da:af6b:8b2c"

#: What the stub DNS knows. Anything else is a test bug.
STUB_DNS: dict[str, list[str]] = {
    "localhost": ["127.0.0.1", "::1"],
    "metadata.google.internal": ["169.254.169.254"],
    "rebind.attacker.example": ["10.0.0.7"],
    "mixed.attacker.example": [PUBLIC_V4, "192.168.0.10"],
    "ula.attacker.example": ["fd12:3456:789a::1"],
    "mapped.attacker.example": ["::ffff:127.0.0.1"],
    "nat64.attacker.example": ["64:ff9b::a00:1"],
    "scoped.attacker.example": ["fe80::1%1"],
    "junk.attacker.example": ["not-an-ip"],
    "merchant.example.com": [PUBLIC_V4],
    "v6.merchant.example.com": [PUBLIC_V6, PUBLIC_V4],
}


def stub_resolver(host: str, port: int) -> list[str]:
    assert host in STUB_DNS, f"unexpected DNS lookup for {host!r}"
    return list(STUB_DNS[host])


HOSTILE = [
    # loopback, private, link-local, metadata, CGNAT and other special IPv4 ranges
    ("http://127.0.0.1/", "loopback"),
    ("http://127.0.0.1:6379/", "loopback-redis-port"),
    ("http://127.255.255.254/", "loopback-top"),
    ("http://10.0.0.1/", "private-10"),
    ("http://172.16.0.1/", "private-172.16"),
    ("http://172.31.255.255/", "private-172.31"),
    ("http://192.168.1.1/", "private-192.168"),
    ("http://169.254.169.254/latest/meta-data/", "cloud-metadata"),
    ("http://169.254.0.1/", "link-local-v4"),
    ("http://100.64.0.1/", "cgnat-low"),
    ("http://100.127.255.254/", "cgnat-high"),
    ("http://0.0.0.0/", "zero"),
    ("http://0.1.2.3/", "this-network"),
    ("http://224.0.0.1/", "multicast"),
    ("http://239.255.255.250/", "multicast-ssdp"),
    ("http://255.255.255.255/", "broadcast"),
    ("http://240.0.0.1/", "reserved-240"),
    ("http://192.0.2.1/", "doc-test-net-1"),
    ("http://198.51.100.7/", "doc-test-net-2"),
    ("http://203.0.113.9/", "doc-test-net-3"),
    ("http://198.18.0.1/", "benchmarking"),
    ("http://192.0.0.8/", "ietf-192.0.0"),
    # IPv6 specials
    ("http://[::1]/", "v6-loopback"),
    ("http://[::]/", "v6-unspecified"),
    ("http://[fd00::1]/", "v6-ula-fd"),
    ("http://[fc00::1]/", "v6-ula-fc"),
    ("http://[fe80::1]/", "v6-link-local"),
    ("http://[fe80::1%25eth0]/", "v6-zone-index"),
    ("http://[ff02::1]/", "v6-multicast"),
    ("http://[2001:db8::1]/", "v6-documentation"),
    ("http://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/", "v6-teredo"),
    ("http://[100::1]/", "v6-discard"),
    # IPv6 wrappers around private IPv4 (Python's ipaddress calls NAT64/6to4 "global")
    ("http://[::ffff:127.0.0.1]/", "mapped-loopback"),
    ("http://[::ffff:7f00:1]/", "mapped-loopback-hex"),
    ("http://[0:0:0:0:0:ffff:127.0.0.1]/", "mapped-loopback-long"),
    ("http://[::ffff:10.0.0.1]/", "mapped-private"),
    ("http://[::ffff:169.254.169.254]/", "mapped-metadata"),
    ("http://[::127.0.0.1]/", "ipv4-compatible"),
    ("http://[64:ff9b::7f00:1]/", "nat64-loopback"),
    ("http://[64:ff9b::a9fe:a9fe]/", "nat64-metadata"),
    ("http://[64:ff9b::a00:1]/", "nat64-private"),
    ("http://[64:ff9b:1::5db8:d70e]/", "nat64-local-use"),
    ("http://[2002:7f00:1::]/", "6to4-loopback"),
    ("http://[2002:a9fe:a9fe::]/", "6to4-metadata"),
    ("http://[2002:5db8:d70e::]/", "6to4-even-of-public"),
    ("http://[127.0.0.1]/", "bracketed-v4"),
    # non-canonical IPv4 spellings that getaddrinfo turns into 127.0.0.1
    ("http://2130706433/", "decimal"),
    ("http://017700000001/", "octal-single"),
    ("http://0177.0.0.1/", "octal-dotted"),
    ("http://0x7f.1/", "hex-short"),
    ("http://0x7f000001/", "hex-single"),
    ("http://0x7f.0x0.0x0.0x1/", "hex-dotted"),
    ("http://127.1/", "short-2"),
    ("http://127.0.1/", "short-3"),
    ("http://127.0.0.1./", "trailing-dot"),
    ("http://127.000.000.001/", "zero-padded"),
    ("http://\u2460\u2461\u2466.0.0.1/", "unicode-digits"),
    # userinfo tricks
    ("http://a@127.0.0.1/", "userinfo-a"),
    ("http://user:pass@merchant.example.com/", "userinfo-credentials"),
    ("http://merchant.example.com@127.0.0.1/", "userinfo-public-looking"),
    ("http://127.0.0.1:80@merchant.example.com/", "userinfo-port-confusion"),
    ("http://merchant.example.com\\@127.0.0.1/", "userinfo-backslash"),
    ("http://@merchant.example.com/", "userinfo-empty"),
    # schemes and malformed URLs
    ("ftp://merchant.example.com/", "ftp"),
    ("file:///etc/passwd", "file"),
    ("gopher://127.0.0.1:6379/_INFO", "gopher"),
    ("javascript:alert(1)", "javascript"),
    ("//merchant.example.com/", "scheme-relative"),
    ("http:///path", "no-host"),
    ("http://:80/", "empty-host"),
    ("", "empty"),
    ("http://[::1/", "unclosed-bracket"),
    ("http://merchant.example.com:0/", "port-zero"),
    ("http://merchant.example.com:99999/", "port-out-of-range"),
    ("http://merchant.example.com:80a/", "port-not-number"),
    ("http://exa mple.com/", "space"),
    ("http://merchant.example.com\t/", "tab"),
    ("http://merchant.example.com/\r\nX-Evil: 1", "crlf"),
    ("http://under_score.example.com/", "invalid-dns-name"),
    ("http://-lead.example.com/", "label-leading-hyphen"),
    ("http://example.123/", "numeric-tld"),
    ("http://" + "a" * 64 + ".com/", "label-too-long"),
    ("http://merchant.example.com/" + "a" * 2100, "url-too-long"),
    # names that resolve somewhere they must not
    ("http://localhost/", "localhost"),
    ("http://localhost./", "localhost-trailing-dot"),
    ("http://LOCALHOST:8080/", "localhost-uppercase"),
    ("http://metadata.google.internal/computeMetadata/v1/", "metadata-name"),
    ("http://rebind.attacker.example/", "dns-to-private"),
    ("http://mixed.attacker.example/", "dns-any-record-private"),
    ("http://ula.attacker.example/", "dns-to-ula"),
    ("http://mapped.attacker.example/", "dns-to-mapped-loopback"),
    ("http://nat64.attacker.example/", "dns-to-nat64-private"),
    ("http://scoped.attacker.example/", "dns-to-scoped-link-local"),
    ("http://junk.attacker.example/", "dns-returns-junk"),
]


@pytest.mark.parametrize("url", [row[0] for row in HOSTILE], ids=[row[1] for row in HOSTILE])
def test_hostile_url_is_refused(url: str) -> None:
    with pytest.raises(ValidationError) as info:
        resolve_public(url, resolver=stub_resolver)
    assert info.value.code is Code.CALLBACK_URL_REFUSED
    assert info.value.field == "dlrUrl"


def test_hostile_table_is_large_and_unique() -> None:
    urls = [row[0] for row in HOSTILE]
    assert len(urls) >= 30
    assert len(set(urls)) == len(urls)
    assert len({row[1] for row in HOSTILE}) == len(HOSTILE)


def test_dns_rebinding_name_is_refused_even_though_it_looks_public() -> None:
    calls: list[tuple[str, int]] = []

    def rebinding(host: str, port: int) -> list[str]:
        calls.append((host, port))
        return ["10.1.2.3"]

    with pytest.raises(ValidationError) as info:
        resolve_public("https://hooks.merchant-public.com/dlr", resolver=rebinding)
    assert info.value.code is Code.CALLBACK_URL_REFUSED
    assert calls == [("hooks.merchant-public.com", 443)]


def test_public_name_passes_and_pins_the_resolved_ip() -> None:
    calls: list[tuple[str, int]] = []

    def public(host: str, port: int) -> list[str]:
        calls.append((host, port))
        return [PUBLIC_V4]

    target = resolve_public("https://Merchant.Example.com/dlr/v1?token=abc#frag", resolver=public)
    assert target == PinnedTarget("https", "merchant.example.com", 443, "/dlr/v1?token=abc", PUBLIC_V4)
    assert target.ip == PUBLIC_V4
    assert target.host_header == "merchant.example.com"
    assert target.connect_url == f"https://{PUBLIC_V4}:443/dlr/v1?token=abc"
    assert calls == [("merchant.example.com", 443)], "resolved exactly once"


def test_public_ipv6_first_record_is_pinned() -> None:
    target = resolve_public("http://v6.merchant.example.com:8080", resolver=stub_resolver, allowed_ports={8080})
    assert target.ip == PUBLIC_V6
    assert target.port == 8080
    assert target.path_and_query == "/"
    assert target.host_header == "v6.merchant.example.com:8080"
    assert target.connect_url == f"http://[{PUBLIC_V6}]:8080/"


@pytest.mark.parametrize(
    ("url", "ip"),
    [
        pytest.param(f"http://{PUBLIC_V4}/", PUBLIC_V4, id="v4-literal"),
        pytest.param(f"http://[{PUBLIC_V6}]/", PUBLIC_V6, id="v6-literal"),
        pytest.param("http://[::ffff:93.184.215.14]/", PUBLIC_V4, id="mapped-public-canonicalised"),
        pytest.param("http://[64:ff9b::5db8:d70e]/", "64:ff9b::5db8:d70e", id="nat64-of-public"),
        pytest.param("http://merchant.example.com.:8443/x", PUBLIC_V4, id="trailing-dot-name"),
    ],
)
def test_public_literals_pass(url: str, ip: str) -> None:
    assert resolve_public(url, resolver=stub_resolver, allowed_ports={80, 8443}).ip == ip


def test_ip_literal_never_reaches_the_resolver() -> None:
    def no_dns(host: str, port: int) -> list[str]:
        raise AssertionError("resolver called for a literal")

    assert resolve_public(f"http://{PUBLIC_V4}:81/", resolver=no_dns, allowed_ports={81}).port == 81


@pytest.mark.parametrize("url", ["https://merchant.example.com:8443/", "http://merchant.example.com:6379/",
                                 f"http://{PUBLIC_V4}:22/"])
def test_only_ports_80_and_443_unless_configured(url: str) -> None:
    with pytest.raises(ValidationError, match="port"):
        resolve_public(url, resolver=stub_resolver)


def test_dns_failure_is_temporary_not_a_refusal() -> None:
    def failing(host: str, port: int) -> list[str]:
        raise ResolutionError("SERVFAIL")

    with pytest.raises(ResolutionError):
        resolve_public("https://merchant.example.com/", resolver=failing)
    with pytest.raises(ResolutionError):
        resolve_public("https://merchant.example.com/", resolver=lambda host, port: [])


def test_allow_private_admits_loopback_only() -> None:
    assert resolve_public("http://127.0.0.1:8000/dlr", allow_private=True).ip == "127.0.0.1"
    assert resolve_public("http://127.8.9.10/", allow_private=True).ip == "127.8.9.10"
    assert resolve_public("http://[::1]:8000/", allow_private=True).ip == "::1"
    assert resolve_public("http://localhost/", allow_private=True, resolver=stub_resolver).ip == "127.0.0.1"
    for url in (
        "http://10.0.0.1/",
        "http://169.254.169.254/",
        "http://192.168.1.1/",
        "http://100.64.0.1/",
        "http://0.0.0.0/",
        "http://[fd00::1]/",
        "http://[fe80::1]/",
        "http://[64:ff9b::7f00:1]/",
        "http://[2002:7f00:1::]/",
        "http://2130706433/",
        "http://a@127.0.0.1/",
        "http://metadata.google.internal/",
    ):
        with pytest.raises(ValidationError) as info:
            resolve_public(url, allow_private=True, resolver=stub_resolver)
        assert info.value.code is Code.CALLBACK_URL_REFUSED, url


_FORBIDDEN_V4_NETS = [
    "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12",
    "192.168.0.0/16", "198.18.0.0/15", "224.0.0.0/4", "240.0.0.0/4",
]


def _samples(cidr: str) -> list[ipaddress.IPv4Address]:
    """Edges and a spread of addresses inside ``cidr`` (deterministic, no example database on disk)."""
    net = ipaddress.IPv4Network(cidr)
    step = max(1, net.num_addresses // 97)
    return [net.network_address + offset for offset in range(0, net.num_addresses, step)] + [net.broadcast_address]


@pytest.mark.parametrize("cidr", _FORBIDDEN_V4_NETS)
def test_every_ipv6_wrapping_of_a_forbidden_ipv4_is_refused(cidr: str) -> None:
    loopback_v6 = ipaddress.IPv6Address("::1")
    for v4 in _samples(cidr):
        assert is_forbidden_ip(v4) is not None, v4
        n = int(v4)
        for wrapped in (
            ipaddress.IPv6Address((0xFFFF << 32) | n),  # ::ffff:a.b.c.d
            ipaddress.IPv6Address(n),  # ::a.b.c.d
            ipaddress.IPv6Address((0x64FF9B << 96) | n),  # 64:ff9b::a.b.c.d
            ipaddress.IPv6Address((0x2002 << 112) | (n << 80)),  # 2002:aabb:ccdd::
        ):
            assert is_forbidden_ip(wrapped) is not None, wrapped
            if wrapped.ipv4_mapped is None and wrapped != loopback_v6:
                # NAT64/6to4/compatible forms of loopback are not loopback: never admitted, even in tests.
                assert is_forbidden_ip(wrapped, allow_private=True) is not None, wrapped
