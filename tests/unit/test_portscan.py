"""Unit tests for the deployment port scanner's parsing and reporting (no network)."""

from __future__ import annotations

import argparse

import pytest

from tests.deploy.portscan import ScanResult, Target, format_ports, parse_ports, parse_target


def test_parse_ports_accepts_numbers_and_ranges() -> None:
    assert parse_ports("22, 80,8001-8003") == frozenset({22, 80, 8001, 8002, 8003})


def test_parse_ports_empty_means_no_port() -> None:
    assert parse_ports("") == frozenset()


@pytest.mark.parametrize("text", ["0", "65536", "443-80", "http", "1-2-3"])
def test_parse_ports_rejects_what_is_not_a_port(text: str) -> None:
    with pytest.raises(ValueError, match="is not a port or range within 1-65535"):
        parse_ports(text)


def test_parse_target_splits_address_and_ports() -> None:
    assert parse_target("10.0.0.5=22,443") == Target("10.0.0.5", frozenset({22, 443}))


@pytest.mark.parametrize("text", ["10.0.0.5", "=22", "10.0.0.5=99999"])
def test_parse_target_names_the_bad_argument(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match=text.split("=")[0] or "="):
        parse_target(text)


def test_format_ports_joins_consecutive_ports_into_ranges() -> None:
    assert format_ports(frozenset({22, 8003, 8001, 8002, 80, 443})) == "22,80,443,8001-8003"
    assert format_ports(frozenset()) == "none"


def test_scan_result_is_ok_only_for_exactly_the_expected_ports() -> None:
    target = Target("10.0.0.5", frozenset({22, 443}))
    assert ScanResult(target, frozenset({22, 443})).ok
    assert not ScanResult(target, frozenset({22})).ok
    assert not ScanResult(target, frozenset({22, 443, 5432})).ok
