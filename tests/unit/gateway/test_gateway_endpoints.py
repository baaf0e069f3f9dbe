"""Worker endpoints the gateway accepts, refuses, and the address it pins.

The resolver is the real one (``localhost`` resolves to loopback on any host); only the DNS
rebind test gives the checker a resolver of its own, since no real name changes its answer on cue.
"""

from __future__ import annotations

import asyncio

import pytest

from api.gateway.endpoints import EndpointRejectedError, WorkerEndpoint, check_endpoint


def _check(url: str, allow_private: bool = False) -> WorkerEndpoint:
    return asyncio.run(check_endpoint(url, allow_private=allow_private))


def _refused(url: str, allow_private: bool = False) -> str:
    with pytest.raises(EndpointRejectedError) as caught:
        _check(url, allow_private)
    assert caught.value.code == "invalid_endpoint"
    return caught.value.message


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://127.0.0.1:9001/x#", "fragment"),
        ("http://127.0.0.1:9001/x", "no path"),
        ("http://10.0.0.1/", "private address"),
        ("https://10.0.0.1/", "private address"),
        ("https://192.168.1.5:8443", "private address"),
        ("https://[fd12::1]/", "private address"),
        ("http://169.254.169.254/latest#", "fragment"),
        ("https://169.254.169.254/", "metadata"),
        ("https://[fd00:ec2::254]/", "metadata"),
        ("https://[::ffff:127.0.0.1]/", "loopback"),
        ("https://0.0.0.0/", "unspecified"),
        ("https://224.0.0.1/", "multicast"),
        ("https://240.0.0.1/", "reserved"),
        ("http://user@example.com/", "userinfo"),
        ("https://user:pw@example.com/", "userinfo"),
        ("https://example.com/?q", "query"),
        ("https://example.com/?", "query"),
        ("https://localhost:9001/", "loopback"),
        ("https://127.0.0.1/", "loopback"),
        ("ftp://example.com/", "https"),
        ("file:///etc/passwd", "https"),
        ("https://exa mple.com/", "whitespace"),
        ("https://example.com\\@127.0.0.1/", "whitespace"),
        ("", "no endpoint"),
        ("https://:443/", "no host"),
        ("https://example.com:99999/", "not a valid URL"),
        ("https://no-such-host.invalid/", "does not resolve"),
    ],
)
def test_refused_outside_dev_mode(url: str, reason: str) -> None:
    assert reason in _refused(url)


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://10.0.0.1/", "must be https"),  # plain http only to loopback
        ("http://127.0.0.1:9001/x#", "fragment"),
        ("https://169.254.169.254/", "metadata"),
        ("https://169.254.10.1/", "link-local"),
        ("https://[fe80::1]/", "link-local"),
        ("https://0.0.0.0/", "unspecified"),
    ],
)
def test_refused_even_when_private_workers_are_allowed(url: str, reason: str) -> None:
    assert reason in _refused(url, allow_private=True)


def test_a_devnet_accepts_loopback_http_and_private_https() -> None:
    local = _check("http://127.0.0.1:9001", allow_private=True)
    assert (local.base, local.host_header, local.extensions) == (
        "http://127.0.0.1:9001", "127.0.0.1:9001", {},
    )  # fmt: skip
    assert _check("http://localhost:9001/", allow_private=True).ip in ("127.0.0.1", "::1")
    assert _check("https://10.1.2.3/", allow_private=True).base == "https://10.1.2.3:443"


def test_a_public_https_endpoint_is_pinned_with_its_name_kept_for_host_and_sni() -> None:
    async def resolve(host: str, port: int) -> list[str]:
        assert (host, port) == ("worker.example.com", 8443)
        return ["93.184.216.34"]

    endpoint = asyncio.run(check_endpoint("https://worker.example.com:8443/", resolve=resolve))
    assert endpoint.base == "https://93.184.216.34:8443"
    assert endpoint.host_header == "worker.example.com:8443"
    assert endpoint.extensions == {"sni_hostname": "worker.example.com"}


def test_a_name_with_one_internal_address_among_public_ones_is_refused() -> None:
    async def resolve(host: str, port: int) -> list[str]:
        del host, port
        return ["93.184.216.34", "10.0.0.7"]

    with pytest.raises(EndpointRejectedError, match="private address"):
        asyncio.run(check_endpoint("https://mixed.example.com/", resolve=resolve))


def test_a_rebind_after_the_check_does_not_move_the_connection() -> None:
    answers = iter([["93.184.216.34"], ["127.0.0.1"]])

    async def resolve(host: str, port: int) -> list[str]:
        del host, port
        return next(answers)

    endpoint = asyncio.run(check_endpoint("https://rebind.example.com/", resolve=resolve))
    # the name now resolves to loopback; the request still goes to the address checked
    assert endpoint.base == "https://93.184.216.34:443"
