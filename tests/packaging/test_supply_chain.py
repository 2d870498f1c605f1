"""The image's dependencies are locked with hashes and agree with pyproject.toml; `make lock` is
reproducible; the chart's SBOM describes exactly the locked set."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tomllib
from pathlib import Path

import pytest
from dockerkit import instructions, stages
from helmkit import CHART_DIR, REPO_ROOT, helm
from lockkit import (
    BUILD_LOCK,
    FROM_PYPROJECT,
    RUNTIME_LOCK,
    SBOM,
    lock_problems,
    parse_lock,
    sbom_components,
)

PYPROJECT = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
RUNTIME = parse_lock(RUNTIME_LOCK.read_text())
BUILD = parse_lock(BUILD_LOCK.read_text())
BIN = Path(sys.executable).parent


def test_runtime_lock_agrees_with_pyproject() -> None:
    problems = lock_problems(
        PYPROJECT["project"]["dependencies"], RUNTIME, direct_via=FROM_PYPROJECT
    )
    assert problems == []
    # Every direct dependency is marked as such (so a dropped one would show).
    direct = {p.name for p in RUNTIME.values() if FROM_PYPROJECT in p.via}
    assert len(direct) == len(PYPROJECT["project"]["dependencies"])
    # Nothing from the dev or stand-in extras reached the runtime lock.
    for forbidden in ("moto", "werkzeug", "pytest", "mypy", "ruff", "uv", "cyclonedx-bom"):
        assert forbidden not in RUNTIME


def test_build_lock_agrees_with_the_build_system() -> None:
    assert lock_problems(PYPROJECT["build-system"]["requires"], BUILD, direct_via="-r -") == []
    assert {"setuptools", "wheel"} <= set(BUILD)


@pytest.mark.parametrize(
    ("edit", "complaint"),
    [
        # A dependency bumped in pyproject.toml past the locked version, without `make lock`.
        (lambda deps: [d.replace("kopf>=1.37", "kopf>=99.0") for d in deps], "'kopf>=99.0'"),
        # A new dependency.
        (lambda deps: [*deps, "rich-click>=1.8"], "'rich-click>=1.8' is required but not"),
        # A dependency dropped (the lock still carries it as a direct one).
        (lambda deps: [d for d in deps if not d.startswith("PyYAML")], "pyyaml is locked"),
    ],
    ids=["bumped", "added", "dropped"],
)
def test_a_pyproject_change_without_relock_is_caught(edit: object, complaint: str) -> None:
    deps = list(PYPROJECT["project"]["dependencies"])
    assert callable(edit)
    problems = lock_problems(edit(deps), RUNTIME, direct_via=FROM_PYPROJECT)
    assert any(complaint in p for p in problems), problems


def test_every_locked_file_is_hashed_and_the_image_requires_it() -> None:
    for pin in [*RUNTIME.values(), *BUILD.values()]:
        assert pin.hashes, pin
        assert all(re.fullmatch(r"[0-9a-f]{64}", h) for h in pin.hashes), pin
    builder = " ".join(a for k, a in stages()[0] if k == "RUN")
    for lock in ("requirements.lock", "requirements-build.lock"):
        assert f"--require-hashes --only-binary=:all: --no-deps -r {lock}" in builder
    assert "--no-build-isolation" in builder  # the wheel is built by the locked setuptools


def test_make_lock_targets_the_image_python_and_platform() -> None:
    (arg,) = [a for k, a in instructions() if k == "ARG" and a.startswith("PYTHON_IMAGE=")]
    python = re.match(r"PYTHON_IMAGE=python:(3\.\d+\.\d+)-", arg)
    assert python
    dry = subprocess.run(
        ["make", "-n", "lock"], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    ).stdout
    compiles = [line for line in dry.splitlines() if "--python-version" in line]
    assert len(compiles) == 2, dry  # runtime and build lock
    assert all(f"--python-version {python.group(1)} " in line for line in compiles), dry
    assert all("--python-platform x86_64-manylinux_2_36" in line for line in compiles), dry


@pytest.mark.slow
def test_make_lock_is_reproducible_and_up_to_date(tmp_path: Path) -> None:
    """`make lock` (needs PyPI) in a copy of the repository, twice: both runs give exactly the
    committed lock files and SBOM."""
    for rel in ("Makefile", "Dockerfile", "pyproject.toml", "README.md"):
        shutil.copy2(REPO_ROOT / rel, tmp_path / rel)
    outputs = [RUNTIME_LOCK, BUILD_LOCK, SBOM]
    for path in outputs:
        target = tmp_path / path.relative_to(REPO_ROOT)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)
    venv = Path(sys.prefix)
    # -o: the existing venv is up to date (its stamp is older than the copied pyproject.toml).
    argv = ["make", "lock", f"VENV={venv}", "-o", f"{venv}/.installed", "-o", "setup"]
    for run in (1, 2):
        result = subprocess.run(argv, cwd=tmp_path, capture_output=True, text=True, check=False)
        assert result.returncode == 0, result.stdout + result.stderr
        for path in outputs:
            produced = (tmp_path / path.relative_to(REPO_ROOT)).read_bytes()
            assert produced == path.read_bytes(), f"run {run}: {path.name} differs"


# ------------------------------------------------------------------------------------- SBOM


def test_sbom_lists_exactly_the_locked_packages_with_their_hashes() -> None:
    sbom = json.loads(SBOM.read_text())
    assert sbom["bomFormat"] == "CycloneDX"
    root = sbom["metadata"]["component"]
    assert (root["name"], root["version"]) == (
        PYPROJECT["project"]["name"],
        PYPROJECT["project"]["version"],
    )
    components = sbom_components(sbom)
    assert components == {name: (pin.version, pin.hashes) for name, pin in RUNTIME.items()}
    for component in sbom["components"]:
        assert component["purl"] == f"pkg:pypi/{component['name']}@{component['version']}"
    # Reproducible output: no timestamp, no random serial number.
    assert "serialNumber" not in sbom
    assert "timestamp" not in sbom["metadata"]


def test_sbom_is_valid_cyclonedx() -> None:
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator

    sbom = json.loads(SBOM.read_text())
    version = SchemaVersion.from_version(sbom["specVersion"])
    assert JsonStrictValidator(version).validate_str(SBOM.read_text()) is None


def test_sbom_ships_in_the_chart_package(tmp_path: Path) -> None:
    helm("package", str(CHART_DIR), "--destination", str(tmp_path))
    (package,) = tmp_path.glob("a2i-retraining-operator-*.tgz")
    with tarfile.open(package) as tar:
        member = tar.extractfile("a2i-retraining-operator/sbom.cdx.json")
        assert member is not None
        assert member.read() == SBOM.read_bytes()


def test_sbom_can_be_regenerated_from_the_lock_offline(tmp_path: Path) -> None:
    """What docs/packaging.md tells a reviewer to do: rebuild the SBOM from the lock and diff."""
    out = tmp_path / "sbom.cdx.json"
    env = {**os.environ, "PIP_NO_INDEX": "1"}
    result = subprocess.run(
        [
            str(BIN / "cyclonedx-py"),
            "requirements",
            "--output-reproducible",
            "--output-format",
            "JSON",
            "--pyproject",
            str(REPO_ROOT / "pyproject.toml"),
            "--output-file",
            str(out),
            str(RUNTIME_LOCK),
        ],
        capture_output=True,
        text=True,
        check=False,
        env=env,
        cwd=REPO_ROOT,
    )
    assert result.returncode == 0, result.stderr
    assert out.read_bytes() == SBOM.read_bytes()
