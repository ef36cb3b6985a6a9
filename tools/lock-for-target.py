"""Print the entries of a universal lock that apply to one target host, with their hashes.

    lock-for-target.py LOCK PYTHON_FULL_VERSION ARCH

The lock (requirements/runtime.lock, written by tools/lock.sh) holds every platform's entries
behind environment markers. pip evaluates markers for the interpreter it runs on, even under
`pip download --python-version`, so the wheelhouse build (tools/build-wheelhouse.sh) asks this
script which entries a Debian host with CPython PYTHON_FULL_VERSION (3.11.2) on ARCH (x86_64,
aarch64) installs, and downloads exactly those. Output: one `name==version --hash=...` line per
entry, sorted as in the lock; no resolution happens, so the result depends on the lock alone.
"""

from __future__ import annotations

import sys
from pathlib import Path

from packaging.requirements import Requirement


def target_environment(python_full_version: str, arch: str) -> dict[str, str]:
    """Return the marker environment of a Linux host running CPython at that version."""
    major, minor = python_full_version.split(".")[:2]
    return {
        "implementation_name": "cpython",
        "implementation_version": python_full_version,
        "os_name": "posix",
        "platform_machine": arch,
        "platform_python_implementation": "CPython",
        "platform_system": "Linux",
        "python_full_version": python_full_version,
        "python_version": f"{major}.{minor}",
        "sys_platform": "linux",
    }


def lock_entries(text: str) -> list[tuple[str, list[str]]]:
    """Split a hashed requirements file into (requirement, hashes) pairs.

    Raises:
        ValueError: an entry is not pinned with `==` or carries no hash.
    """
    entries = []
    logical = ""
    for line in text.splitlines():
        stripped = line.split(" #", 1)[0].strip() if not line.lstrip().startswith("#") else ""
        if stripped.endswith("\\"):
            logical += stripped[:-1] + " "
            continue
        logical += stripped
        if logical.strip():
            requirement, *hashes = (part.strip() for part in logical.split("--hash="))
            if "==" not in requirement or not hashes:
                raise ValueError(f"not a pinned entry with hashes: {logical.strip()}")
            entries.append((requirement, [f"--hash={h}" for h in hashes]))
        logical = ""
    return entries


def main(argv: list[str]) -> int:
    """Print the lock's entries for the target named on the command line."""
    if len(argv) != 4:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    lock, python_full_version, arch = argv[1:]
    environment = target_environment(python_full_version, arch)
    for text, hashes in lock_entries(Path(lock).read_text(encoding="utf-8")):
        requirement = Requirement(text)
        if requirement.marker is None or requirement.marker.evaluate(environment):
            extras = f"[{','.join(sorted(requirement.extras))}]" if requirement.extras else ""
            print(f"{requirement.name}{extras}{requirement.specifier} {' '.join(hashes)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
