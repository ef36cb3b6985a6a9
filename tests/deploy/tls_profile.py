#!/usr/bin/env python3
# /// script
# requires-python = ">=3.11"
# dependencies = ["sslyze==6.3.1"]
# ///
"""Check a deployed HTTPS server against Mozilla's intermediate TLS profile with sslyze.

Usage (from the controller)::

    uv run --script tests/deploy/tls_profile.py --json-out build/sslyze.json \\
        [--allow certificate_path_validation] 10.231.1.11:443

sslyze runs in the environment uv makes for this script (the dependencies above), not in the
project's .venv: it requires cryptography < 47, the collection community.crypto of the pinned
``ansible`` fails with cryptography 46 ("does not support SECP256R1") and ansible-lint requires
>= 46.0.7, so no version fits all three in one environment.

The same scan and the same check as ``sslyze --mozilla_config=intermediate --json_out=...``
(sslyze's own scan commands and its ``check_server_against_tls_configuration``), but the
deviations from the profile come back by name instead of as console text: sslyze's JSON output
holds the scan results only, not the compliance verdict. Each deviation is printed; those named
with ``--allow`` are accepted (the self-signed default certificate is not trusted by design:
``certificate_path_validation``), any other one fails the check. The JSON output is written for
the record.

Exit status: 0 when the server deviates in allowed ways only, 1 when it deviates otherwise or
the scan did not complete, 2 on bad usage.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from datetime import UTC, datetime
from pathlib import Path

from cryptography.utils import CryptographyDeprecationWarning
from sslyze import (
    Scanner,
    ServerNetworkLocation,
    ServerScanRequest,
    ServerScanResultAsJson,
    SslyzeOutputAsJson,
)
from sslyze.mozilla_tls_profile.tls_config_checker import (
    MozillaTlsConfiguration,
    ServerNotCompliantWithTlsConfiguration,
    ServerScanResultIncomplete,
    TlsConfigurationEnum,
    check_server_against_tls_configuration,
)


def parse_args(argv: list[str]) -> argparse.Namespace:
    """Read the command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("target", help="host:port of the HTTPS server")
    parser.add_argument("--json-out", type=Path, required=True, help="where to write the scan")
    parser.add_argument(
        "--allow",
        action="append",
        default=[],
        metavar="CRITERION",
        help="a deviation accepted by name (sslyze's criterion, e.g. certificate_path_validation)",
    )
    args = parser.parse_args(argv)
    host, _, port = args.target.rpartition(":")
    if not host or not port.isdigit():
        parser.error(f"target must be host:port, not {args.target!r}")
    args.host, args.port = host.strip("[]"), int(port)
    return args


def main(argv: list[str]) -> int:
    """Scan the server, write the JSON output, check it against the profile."""
    args = parse_args(argv)
    # sslyze's bundled trust stores hold a root with a negative serial number; cryptography warns
    # on loading it, which says nothing about the server checked.
    warnings.filterwarnings(
        "ignore", "Parsed a serial number which wasn't positive", CryptographyDeprecationWarning
    )
    started = datetime.now(UTC)
    scanner = Scanner()
    # No scan_commands: sslyze's default set, the one its command line runs and the profile
    # check needs.
    scanner.queue_scans(
        [ServerScanRequest(server_location=ServerNetworkLocation(args.host, args.port))]
    )
    results = list(scanner.get_results())
    output = SslyzeOutputAsJson(
        server_scan_results=[ServerScanResultAsJson.model_validate(r) for r in results],
        invalid_server_strings=[],
        date_scans_started=started,
        date_scans_completed=datetime.now(UTC),
    )
    args.json_out.parent.mkdir(parents=True, exist_ok=True)
    args.json_out.write_text(output.model_dump_json(indent=2), encoding="utf-8")

    profile = MozillaTlsConfiguration.get(TlsConfigurationEnum.MOZILLA_INTERMEDIATE)
    (result,) = results
    try:
        check_server_against_tls_configuration(result, profile)
    except ServerScanResultIncomplete as error:
        print(f"FAILED: the scan of {args.target} did not complete ({error}); see {args.json_out}")
        return 1
    except ServerNotCompliantWithTlsConfiguration as error:
        issues = error.issues
    else:
        issues = {}
    refused = sorted(set(issues) - set(args.allow))
    for criterion, description in sorted(issues.items()):
        verdict = "accepted" if criterion in args.allow else "FAILED"
        print(f"{verdict}: {criterion}: {description}")
    if refused:
        print(f"{args.target} deviates from Mozilla's intermediate profile: {', '.join(refused)}")
        return 1
    print(f"{args.target} follows Mozilla's intermediate profile (accepted: {len(issues)})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
