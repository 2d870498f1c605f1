"""Read the hash-pinned lock files `make lock` writes (uv pip compile's requirements format)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from helmkit import REPO_ROOT
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

RUNTIME_LOCK = REPO_ROOT / "requirements.lock"
BUILD_LOCK = REPO_ROOT / "requirements-build.lock"
SBOM = REPO_ROOT / "charts" / "a2i-retraining-operator" / "sbom.cdx.json"
# How uv annotates a package pyproject.toml's [project].dependencies ask for.
FROM_PYPROJECT = "a2i-retraining-operator (pyproject.toml)"


@dataclass
class Pin:
    name: str
    version: str
    hashes: set[str] = field(default_factory=set)
    via: set[str] = field(default_factory=set)


def parse_lock(text: str) -> dict[str, Pin]:
    """canonical name -> Pin. Refuses anything but `name==version` entries."""
    pins: dict[str, Pin] = {}
    current: Pin | None = None
    in_via = False
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped:
            continue
        if not line.startswith(" ") and not stripped.startswith("#"):
            match = re.fullmatch(r"([A-Za-z0-9._-]+)==([^\s;\\]+)\s*\\?", stripped)
            if not match:
                raise ValueError(f"not an exact pin: {line!r}")
            current = Pin(canonicalize_name(match.group(1)), match.group(2))
            pins[current.name] = current
            in_via = False
        elif current is not None and stripped.startswith("--hash=sha256:"):
            current.hashes.add(stripped.removeprefix("--hash=sha256:").rstrip(" \\"))
        elif current is not None and stripped.startswith("# via"):
            rest = stripped.removeprefix("# via").strip()
            if rest:
                current.via.add(rest)
            in_via = not rest
        elif current is not None and in_via and stripped.startswith("#   "):
            current.via.add(stripped.removeprefix("#").strip())
    return pins


def lock_problems(requirements: list[str], pins: dict[str, Pin], *, direct_via: str) -> list[str]:
    """Where the lock does not satisfy `requirements` (PEP 508 strings), in words."""
    problems: list[str] = []
    wanted: set[str] = set()
    for text in requirements:
        requirement = Requirement(text)
        name = canonicalize_name(requirement.name)
        wanted.add(name)
        pin = pins.get(name)
        if pin is None:
            problems.append(f"{text!r} is required but not in the lock: run `make lock`")
        elif not requirement.specifier.contains(pin.version, prereleases=True):
            problems.append(
                f"{text!r} is required but the lock pins {pin.version}: run `make lock`"
            )
    for pin in pins.values():
        if not pin.hashes:
            problems.append(f"{pin.name}=={pin.version} has no hash")
        if direct_via in pin.via and pin.name not in wanted:
            problems.append(f"{pin.name} is locked as a direct dependency nobody asks for")
    return problems


def sbom_components(sbom: dict[str, Any]) -> dict[str, tuple[str, set[str]]]:
    """canonical name -> (version, sha256 hashes) of the SBOM's components."""
    out: dict[str, tuple[str, set[str]]] = {}
    for component in sbom["components"]:
        hashes = {
            h["content"]
            for ref in component.get("externalReferences", [])
            for h in ref.get("hashes", [])
            if h["alg"] == "SHA-256"
        }
        out[canonicalize_name(component["name"])] = (component["version"], hashes)
    return out
