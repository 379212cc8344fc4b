"""The image's lock files say what pyproject.toml says: every runtime dependency pinned, hashed.

No Docker needed. A dependency added to pyproject.toml without `make lock` fails here,
before an image is built without it.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[2]
PIN = re.compile(r"^([A-Za-z0-9._-]+)==(\S+) \\$", re.MULTILINE)


def _pins(lock: Path) -> dict[str, str]:
    pins: dict[str, str] = {}
    for line in lock.read_text().splitlines():
        if not line or line.startswith(("#", " ")):
            continue  # comments, and the hash lines under each pin
        # A pin carries hashes (a continuation line follows), or --require-hashes fails.
        found = PIN.match(line)
        assert found, f"{lock.name}: {line!r} is not a pin with hashes"
        pins[canonicalize_name(found.group(1))] = found.group(2)
    return pins


def test_every_runtime_dependency_is_pinned_within_its_constraint_in_the_lock() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    pins = _pins(REPO / "requirements" / "runtime.txt")

    for line in project["dependencies"]:
        requirement = Requirement(line)
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{requirement.name} is not in requirements/runtime.txt: make lock"
        assert requirement.specifier.contains(pins[name]), (
            f"{requirement.name}=={pins[name]} does not satisfy {requirement.specifier}: make lock"
        )


def test_the_installer_lock_pins_pip_alone() -> None:
    assert list(_pins(REPO / "requirements" / "installer.txt")) == ["pip"]
