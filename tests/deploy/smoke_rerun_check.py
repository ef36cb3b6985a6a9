#!/usr/bin/env python3
"""Prove that the smoke test can be re-run when this address may register no more accounts.

tools/up.sh runs tests/deploy/smoke.py after every converge. Registration is limited per client
address (10 per hour by default) and every client on a lab bridge has the same address, so a
smoke test that registers on every run fails after a few re-runs. This check, against a
deployment with the default limit::

    python tests/deploy/smoke_rerun_check.py --base-url https://10.231.0.11 --insecure \\
        --account-file inventories/local/.secrets/smoke_account.json \\
        [--admin-email admin@example.com]   # password from $CHATBOT_SMOKE_ADMIN_PASSWORD

1. runs the smoke test with --account-file, which registers the account on its first run (an
   account file that exists already is reused);
2. spends what is left of this address's registration budget with invalid registrations (400,
   no account is created) until the app answers 429 rate_limited;
3. runs the smoke test with the same --account-file again: it must pass.

Afterwards no new account can be registered from this address for up to an hour. Exit status:
0 when the re-run passed, 1 when not, 2 on bad usage.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import requests
import urllib3
from smoke import describe_error, summarize

SMOKE = Path(__file__).with_name("smoke.py")
# Far above the default limit (10 per hour); a deployment that allows more is not what this
# check is about.
MAX_ATTEMPTS = 20
# nginx lets each address through at 10 requests/s with a burst of 20 (nginx_api_rate_limit and
# _burst defaults) and refuses the excess with its own 429. Its bucket drains by the clock, not
# by any event this check could wait for: pace the registrations at half that rate, and give the
# bucket twice its drain time (20 / 10 per s) before each smoke run of about 20 requests.
REQUEST_INTERVAL = 0.2
NGINX_DRAIN = 4.0


class CheckFailedError(Exception):
    """The deployment or the smoke test did not behave as this check needs."""


def run_smoke(args: argparse.Namespace, label: str) -> None:
    """Run the smoke test with the saved account, printing its report; fail unless it passes."""
    command = [sys.executable, str(SMOKE), "--base-url", args.base_url]
    command += ["--account-file", str(args.account_file)]
    if args.insecure:
        command.append("--insecure")
    if args.admin_email:
        command += ["--admin-email", args.admin_email]
    print(f"--- {label}: {' '.join(command)}", flush=True)
    time.sleep(NGINX_DRAIN)
    # Bounded: smoke.py bounds each request (10 s) and the streamed reply (60 s).
    result = subprocess.run(command, check=False, timeout=600)
    if result.returncode != 0:
        raise CheckFailedError(f"{label}: the smoke test exited {result.returncode}")


def use_up_registrations(args: argparse.Namespace) -> int:
    """Send invalid registrations until the app refuses with 429; return how many it took."""
    url = args.base_url.rstrip("/") + "/api/v1/auth/register"
    session = requests.Session()
    session.headers.update({"User-Agent": "chatbot-smoke-rerun-check/1"})
    for attempt in range(1, MAX_ATTEMPTS + 1):
        time.sleep(REQUEST_INTERVAL)
        try:
            # No email and no password: refused with 400, and counted by the limit all the same.
            response = session.post(url, json={}, timeout=10, verify=not args.insecure)
        except requests.RequestException as exc:
            raise CheckFailedError(f"POST {url}: {describe_error(exc)}") from exc
        if response.status_code == 429:
            try:
                code = response.json()["error"]["code"]
            except (ValueError, KeyError, TypeError):
                code = None
            if code != "rate_limited":
                raise CheckFailedError(f"429 not from the app's limit: {summarize(response)}")
            return attempt
        if response.status_code != 400:
            raise CheckFailedError(
                f"an invalid registration got {response.status_code}, not 400: "
                f"{summarize(response)}"
            )
    raise CheckFailedError(
        f"no 429 after {MAX_ATTEMPTS} registrations: this deployment's registration limit is not"
        " the default, so this check proves nothing here"
    )


def main(argv: list[str] | None = None) -> int:
    """Run the check; return the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base-url", required=True, help="HTTPS URL of nginx")
    parser.add_argument("--insecure", action="store_true", help="accept a self-signed cert")
    parser.add_argument(
        "--account-file", type=Path, required=True, help="the smoke test's saved account"
    )
    parser.add_argument(
        "--admin-email", help="also check the admin API ($CHATBOT_SMOKE_ADMIN_PASSWORD)"
    )
    args = parser.parse_args(argv)
    if args.insecure:
        urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
    try:
        run_smoke(args, "first run (registers the account unless it is saved already)")
        attempts = use_up_registrations(args)
        print(f"--- registration refused (429 rate_limited) after {attempts} attempt(s)")
        run_smoke(args, "re-run with no registration left")
    except CheckFailedError as exc:
        print(f"FAIL {exc}", flush=True)
        return 1
    print("PASS the smoke test passes again with no registration left to this address")
    return 0


if __name__ == "__main__":
    sys.exit(main())
