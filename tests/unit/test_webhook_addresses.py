"""The webhook address guard: which URLs and addresses webhooks may reach."""

from __future__ import annotations

import ipaddress

import pytest

from webapp.settings import Settings, SettingsError
from webapp.webhooks.addresses import RefusedAddressError, refusal_reason, resolve_target

BASE_ENV = {
    "DATABASE_URL": "postgresql://user:password@127.0.0.1:1/none",
    "REDIS_URL": "redis://127.0.0.1:1/0",
    "SECRET_KEY": "unit-test-secret-key-" + "x" * 32,
}


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("127.0.0.1", "loopback"),
        ("127.255.255.254", "loopback"),
        ("10.1.2.3", "private"),
        ("172.16.0.1", "private"),
        ("192.168.1.1", "private"),
        ("169.254.169.254", "link-local"),
        ("100.64.0.1", "non-public"),
        ("224.0.0.1", "multicast"),
        ("240.0.0.1", "reserved"),
        ("0.0.0.0", "unspecified"),  # noqa: S104 - an address to refuse
        ("::1", "loopback"),
        ("::", "unspecified"),
        ("fe80::1", "link-local"),
        ("fc00::1", "private"),
        ("fd12:3456::1", "private"),
        ("ff02::1", "multicast"),
        # IPv4 inside IPv6: judged by where the packet really goes.
        ("::ffff:127.0.0.1", "loopback"),
        ("::ffff:10.0.0.1", "private"),
        ("2002:7f00:1::1", "loopback"),
        ("64:ff9b::a9fe:a9fe", "link-local"),
    ],
)
def test_non_public_addresses_are_refused(address, kind):
    reason = refusal_reason(ipaddress.ip_address(address))
    assert reason is not None
    assert reason.endswith(f"is {'an' if kind[0] in 'aeiou' else 'a'} {kind} address")


@pytest.mark.parametrize("address", ["93.184.215.14", "8.8.8.8", "2606:4700:4700::1111"])
def test_public_addresses_are_allowed(address):
    assert refusal_reason(ipaddress.ip_address(address)) is None


def test_the_allow_list_admits_its_networks_only():
    allowed = [ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("fd00::/8")]
    assert refusal_reason(ipaddress.ip_address("127.0.0.1"), allowed) is None
    assert refusal_reason(ipaddress.ip_address("::ffff:127.0.0.1"), allowed) is None
    assert refusal_reason(ipaddress.ip_address("fd00::5"), allowed) is None
    assert refusal_reason(ipaddress.ip_address("10.0.0.1"), allowed) is not None
    assert refusal_reason(ipaddress.ip_address("::1"), allowed) is not None


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("ftp://example.com/", "http:// or https://"),
        ("file:///etc/passwd", "http:// or https://"),
        ("http:///path", "must name a host"),
        ("https://user:secret@example.com/", "credentials"),
        ("https://example.com/#frag", "fragment"),
        ("https://example.com:0/", "port 0"),
        ("https://example.com:99999/", "not a valid URL"),
        ("https://example.com/a b", "spaces"),
        ("http://127.0.0.1/", "loopback"),
        ("http://[::ffff:169.254.169.254]/", "link-local"),
    ],
)
def test_bad_urls_are_refused_with_a_reason(url, problem):
    with pytest.raises(RefusedAddressError, match=problem):
        resolve_target(url, resolve=False)


def test_a_literal_address_resolves_to_itself_with_the_default_port():
    target = resolve_target("https://[::1]/hook", [ipaddress.ip_network("::1/128")], resolve=False)
    assert (target.scheme, target.host, target.port) == ("https", "::1", 443)
    assert target.address == ipaddress.ip_address("::1")


def test_a_name_that_resolves_to_loopback_is_refused():
    # "localhost" resolves without any network, to 127.0.0.1 and/or ::1.
    with pytest.raises(RefusedAddressError, match="loopback"):
        resolve_target("http://localhost:8080/hook")


def test_a_name_that_does_not_resolve_is_refused_in_words_not_resolver_text():
    # ".invalid" never resolves (RFC 6761); the admin reads what to check, not "[Errno -2] ...".
    with pytest.raises(RefusedAddressError) as refused:
        resolve_target("https://no-such-host.invalid/hook")
    message = str(refused.value)
    assert message.startswith("url host no-such-host.invalid was not found: check the host name")
    assert "Errno" not in message
    assert "Name or service" not in message


def test_allowed_networks_setting_is_parsed_and_validated():
    settings = Settings.from_env(
        {**BASE_ENV, "WEBHOOK_ALLOWED_NETWORKS": " 10.0.0.0/8, fd00::/8 ,"}
    )
    assert settings.webhook_allowed_networks == (
        ipaddress.ip_network("10.0.0.0/8"),
        ipaddress.ip_network("fd00::/8"),
    )
    assert Settings.from_env(BASE_ENV).webhook_allowed_networks == ()
    for bad in ("10.0.0.1/8", "not-a-network", "10.0.0.0/33"):
        with pytest.raises(SettingsError) as caught:
            Settings.from_env({**BASE_ENV, "WEBHOOK_ALLOWED_NETWORKS": bad})
        assert "WEBHOOK_ALLOWED_NETWORKS" in caught.value.errors
