#!/usr/bin/env python3
"""Scan every TCP port of some hosts and compare the open ones with what is expected.

Usage (standard library only, so it also runs on a test host with Debian's python3)::

    python3 tests/deploy/portscan.py --expect 10.231.2.11=22,80,443 --expect 10.231.2.31=22

A port is *open* when a TCP connection to it is established. Ports that refuse (RST) or stay
silent (a firewall dropping the SYN) are both closed. All targets are scanned at once, with
many non-blocking connections in flight, so a firewall that drops packets costs about one
connect timeout per batch rather than per port. Under load a slow scanner could see an answer
from an open port after its timeout; every port expected open but not found is therefore probed
once more, alone, with a longer timeout. A port found open is always open (no false positives),
so a scan can only miss an unexpected open port if it answers slower than the timeout on a
private network.

Every probe of a port a firewall drops leaves a conntrack entry on the scanning host for two
minutes (when it tracks connections, as a host with this project's firewall does); a full table
would drop the host's own new connections. The targets are therefore scanned in batches that
leave CONNTRACK_RESERVE entries free, waiting (up to --conntrack-wait) for room when needed.

Prints one line per target (`ok` or `FAIL`, expected and found ports) and exits with status 0
when every target's open ports are exactly the expected ones, 1 otherwise, 2 on bad usage or
when the conntrack table has no room in time.
"""

from __future__ import annotations

import argparse
import errno
import resource
import select
import socket
import sys
import time
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

ALL_PORTS = range(1, 65536)
# Conntrack entries a scan leaves free for the scanning host's own connections.
CONNTRACK_RESERVE = 65536


@dataclass(frozen=True)
class Target:
    """A host to scan and the TCP ports that must be open on it (all others closed)."""

    address: str
    expected: frozenset[int]


@dataclass(frozen=True)
class ScanResult:
    """The open ports found on one target."""

    target: Target
    found: frozenset[int]

    @property
    def ok(self) -> bool:
        """Whether exactly the expected ports are open."""
        return self.found == self.target.expected


def parse_ports(text: str) -> frozenset[int]:
    """Parse a port list such as ``22,80,8001-8003`` (empty: no port may be open).

    Raises:
        ValueError: an item is not a port number or range within 1-65535.
    """
    ports: set[int] = set()
    for item in filter(None, (part.strip() for part in text.split(","))):
        low, _, high = item.partition("-")
        if not low.isdigit() or not (high or low).isdigit():
            raise ValueError(f"{item!r} is not a port or range within 1-65535")
        first, last = int(low), int(high or low)
        if not 1 <= first <= last <= 65535:
            raise ValueError(f"{item!r} is not a port or range within 1-65535")
        ports.update(range(first, last + 1))
    return frozenset(ports)


def parse_target(text: str) -> Target:
    """Parse ``ADDRESS=PORTS`` for ``--expect``."""
    address, sep, ports = text.partition("=")
    if not sep or not address:
        raise argparse.ArgumentTypeError(f"{text!r}: expected ADDRESS=PORTS, e.g. 10.0.0.5=22,443")
    try:
        return Target(address, parse_ports(ports))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r}: {exc}") from exc


def format_ports(ports: frozenset[int]) -> str:
    """Format ports compactly, runs of consecutive ports as ranges."""
    runs: list[str] = []
    for port in sorted(ports):
        if runs and runs[-1].split("-")[-1] == str(port - 1):
            runs[-1] = f"{runs[-1].split('-')[0]}-{port}"
        else:
            runs.append(str(port))
    return ",".join(runs) or "none"


def self_connected(sock: socket.socket) -> bool:
    """Whether a connection to this host found its own source port (TCP simultaneous open).

    Scanning a local address, a probe whose ephemeral source port equals the destination port
    connects to itself; that is not a listening service.
    """
    try:
        return sock.getsockname() == sock.getpeername()
    except OSError:
        return False


def probe_all(
    pairs: Iterable[tuple[str, int]], timeout: float, concurrency: int
) -> set[tuple[str, int]]:
    """Return the (address, port) pairs that accept a TCP connection within `timeout`.

    Non-blocking connects watched with epoll, `concurrency` of them in flight: a few
    microseconds of CPU per port, so a scan is bounded by the timeout, not by the interpreter.
    """
    poller = select.epoll()
    in_flight: dict[int, tuple[socket.socket, str, int]] = {}
    # (deadline, socket) in start order, so deadlines are ascending; entries of sockets that
    # already answered are skipped when they come up (their descriptor may have been reused).
    deadlines: deque[tuple[float, socket.socket]] = deque()
    accepted: set[tuple[str, int]] = set()
    pending = iter(pairs)
    exhausted = False
    try:
        while True:
            while not exhausted and len(in_flight) < concurrency:
                pair = next(pending, None)
                if pair is None:
                    exhausted = True
                    break
                address, port = pair
                sock = socket.socket(
                    socket.AF_INET6 if ":" in address else socket.AF_INET, socket.SOCK_STREAM
                )
                sock.setblocking(False)
                status = sock.connect_ex((address, port))
                if status == errno.EINPROGRESS:
                    in_flight[sock.fileno()] = (sock, address, port)
                    poller.register(sock.fileno(), select.EPOLLOUT)
                    deadlines.append((time.monotonic() + timeout, sock))
                    continue
                if status == 0 and not self_connected(sock):
                    accepted.add((address, port))
                sock.close()
            if not in_flight:
                return accepted
            wait = max(0.0, deadlines[0][0] - time.monotonic()) if deadlines else timeout
            for fd, _events in poller.poll(wait, len(in_flight)):
                sock, address, port = in_flight.pop(fd)
                poller.unregister(fd)
                if sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0 and not self_connected(
                    sock
                ):
                    accepted.add((address, port))
                sock.close()
            now = time.monotonic()
            while deadlines and deadlines[0][0] <= now:
                _deadline, sock = deadlines.popleft()
                if sock.fileno() != -1:  # no answer in time: closed (a firewall dropped it)
                    del in_flight[sock.fileno()]
                    poller.unregister(sock.fileno())
                    sock.close()
    finally:
        for sock, _address, _port in in_flight.values():
            sock.close()
        poller.close()


def scan(targets: Sequence[Target], timeout: float, concurrency: int) -> list[ScanResult]:
    """Scan every port of every target, with `concurrency` connection attempts in flight."""
    # Interleave the targets, so each sees a moderate rate rather than one burst after another.
    accepted = probe_all(
        ((target.address, port) for port in ALL_PORTS for target in targets), timeout, concurrency
    )
    # Second chance, patiently, for expected ports the burst may have missed.
    missed = [
        (target.address, port)
        for target in targets
        for port in sorted(target.expected)
        if (target.address, port) not in accepted
    ]
    accepted |= probe_all(missed, timeout * 4, 1)
    return [
        ScanResult(
            target, frozenset(port for address, port in accepted if address == target.address)
        )
        for target in targets
    ]


def conntrack_room() -> int | None:
    """Return how many more connections this network namespace's conntrack table holds.

    None when the table is not in use here. Every probe of a port that a firewall drops leaves
    an entry (state SYN_SENT) for nf_conntrack_tcp_timeout_syn_sent (120 s) on the scanning
    host; a full table drops the host's new connections, so a scan must not fill it.
    """
    base = Path("/proc/sys/net/netfilter")
    try:
        count = int((base / "nf_conntrack_count").read_text())
        maximum = int((base / "nf_conntrack_max").read_text())
    except (OSError, ValueError):
        return None
    return maximum - count


def wait_for_conntrack_room(targets: int, patience: float) -> int:
    """Return how many of `targets` hosts can be scanned now without filling conntrack.

    Waits up to `patience` seconds for at least one; 0 when even one does not fit by then.
    Without connection tracking in this network namespace the count never grows, so all fit.
    """
    deadline = time.monotonic() + patience
    while True:
        room = conntrack_room()
        if room is None:
            return targets
        fitting = min(targets, max(0, room - CONNTRACK_RESERVE) // len(ALL_PORTS))
        if fitting > 0 or time.monotonic() >= deadline:
            return fitting
        time.sleep(5)


def raise_open_files_limit(needed: int) -> int:
    """Raise the soft limit on open files towards `needed`; return the usable concurrency."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = needed + 64
    if soft != resource.RLIM_INFINITY and soft < wanted:
        new_soft = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (new_soft, hard))
            soft = new_soft
        except (ValueError, OSError):
            pass  # keep the current limit and scan with fewer connections in flight
    if soft == resource.RLIM_INFINITY:
        return needed
    return max(1, min(needed, soft - 64))


def main(argv: Sequence[str] | None = None) -> int:
    """Scan the targets given on the command line and report; return the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--expect",
        type=parse_target,
        action="append",
        required=True,
        metavar="ADDRESS=PORTS",
        help="a target and the ports that must be open on it, e.g. 10.0.0.5=22,80,443 "
        "(repeatable; an empty list means none)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=1.0,
        help="seconds to wait for a connection (default 1.0; on a private network an open "
        "port answers in milliseconds)",
    )
    parser.add_argument(
        "--concurrency",
        type=int,
        default=20000,
        help="connection attempts in flight (default 20000, bounded by the open files limit)",
    )
    parser.add_argument(
        "--conntrack-wait",
        type=float,
        default=150.0,
        help="seconds to wait at most for room in the conntrack table (default 150)",
    )
    parser.add_argument("--source", default="", help="a label for where the scan runs from")
    args = parser.parse_args(argv)
    if args.timeout <= 0 or args.concurrency < 1:
        parser.error("--timeout and --concurrency must be positive")

    concurrency = raise_open_files_limit(args.concurrency)
    started = time.monotonic()
    results: list[ScanResult] = []
    pending = list(args.expect)
    while pending:
        batch = wait_for_conntrack_room(len(pending), args.conntrack_wait)
        if batch == 0:
            print(
                f"portscan: this host's conntrack table has no room for a scan of 65535 ports"
                f" after waiting {args.conntrack_wait:.0f} s (an earlier scan's entries last"
                " nf_conntrack_tcp_timeout_syn_sent); try again later",
                file=sys.stderr,
            )
            return 2
        results += scan(pending[:batch], args.timeout, concurrency)
        pending = pending[batch:]
    seconds = time.monotonic() - started
    source = f" from {args.source}" if args.source else ""
    for result in results:
        verdict = "ok  " if result.ok else "FAIL"
        line = (
            f"{verdict} {result.target.address}{source}: open {format_ports(result.found)}"
            f" (expected {format_ports(result.target.expected)})"
        )
        if not result.ok:
            unexpected = result.found - result.target.expected
            missing = result.target.expected - result.found
            line += f"; unexpected open: {format_ports(frozenset(unexpected))}"
            line += f"; expected but closed: {format_ports(frozenset(missing))}"
        print(line)
    print(
        f"scanned {len(results)} host(s) x 65535 TCP ports in {seconds:.1f} s"
        f" ({concurrency} in flight, {args.timeout} s timeout)"
    )
    return 0 if all(result.ok for result in results) else 1


if __name__ == "__main__":
    sys.exit(main())
