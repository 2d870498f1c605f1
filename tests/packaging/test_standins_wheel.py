"""The two distributions from their wheels, in clean venvs: no checkout, no editable install.

- The operator's wheel alone carries no stand-ins: its CLI has no `standins` or `demo`, and
  neither moto nor werkzeug gets installed.
- With the stand-ins' wheel (tests/standins-pkg) beside it, `retraining-standins demo`, run from
  an empty directory, closes the loop: the demo does not depend on the checkout's layout.

Needs PyPI (pip may use its cache) and the envtest binaries (the `envtest_assets` fixture fails,
never skips, without them). Marked slow: about two minutes, most of it the demo itself.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from dockerkit import build_context
from helmkit import REPO_ROOT

pytestmark = [pytest.mark.slow, pytest.mark.kube]

STANDINS_SRC = REPO_ROOT / "tests" / "standins-pkg"
PIP = [sys.executable, "-m", "pip"]


def _run(
    argv: list[str], *, cwd: Path | None = None, env: dict[str, str] | None = None, timeout=600
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        argv, capture_output=True, text=True, check=False, cwd=cwd, env=env, timeout=timeout
    )
    output = f"{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    assert result.returncode == 0, f"{argv} failed ({result.returncode}):\n{output}"
    return result


def _wheel(source: Path, out: Path) -> Path:
    _run([*PIP, "wheel", "--no-deps", "--wheel-dir", str(out), "."], cwd=source)
    (wheel,) = out.glob("*.whl")
    return wheel


def _venv(path: Path, *wheels: Path) -> Path:
    """A venv without pip, filled by the outer pip (as the Dockerfile does); returns its bin/."""
    _run([sys.executable, "-m", "venv", "--without-pip", str(path)])
    _run([*PIP, "--python", str(path / "bin" / "python"), "install", *map(str, wheels)])
    return path / "bin"


def _clean_env(bin_dir: Path, home: Path, **extra: str) -> dict[str, str]:
    return {"PATH": f"{bin_dir}:/usr/bin:/bin", "HOME": str(home), **extra}


def _commands(help_text: str) -> set[str]:
    """The subcommands argparse lists under COMMAND, one per line, indented by four spaces."""
    return set(re.findall(r"^ {4}(\w\S*)", help_text, re.MULTILINE))


@pytest.fixture(scope="module")
def operator_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The operator's wheel, built from exactly what the image's build context holds."""
    source = tmp_path_factory.mktemp("operator-src")
    for rel in sorted(build_context()):
        target = source / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO_ROOT / rel, target)
    return _wheel(source, tmp_path_factory.mktemp("operator-wheel"))


def test_the_operator_wheel_alone_has_no_standins(operator_wheel: Path, tmp_path: Path) -> None:
    assert not any(
        name.startswith(("retraining_standins", "retraining_operator/standins"))
        for name in zipfile.ZipFile(operator_wheel).namelist()
    )
    bin_dir = _venv(tmp_path / "venv", operator_wheel)
    env = _clean_env(bin_dir, tmp_path)
    help_text = _run([str(bin_dir / "retraining-operator"), "--help"], env=env).stdout
    assert _commands(help_text) == {
        "run",
        "plan",
        "manifest",
        "evaluate",
        "iam-policy",
        "status",
        "tenant",
    }
    assert "standins" not in help_text
    assert "demo" not in help_text
    for argv in (["standins", "--help"], ["demo", "--help"]):
        refused = subprocess.run(
            [str(bin_dir / "retraining-operator"), *argv], capture_output=True, text=True, env=env
        )
        assert refused.returncode == 2
        assert "invalid choice" in refused.stderr
    python = str(bin_dir / "python")
    for name in ("moto", "werkzeug", "a2i-retraining-standins"):
        shown = subprocess.run(
            [*PIP, "--python", python, "show", name], capture_output=True, text=True
        )
        assert shown.returncode != 0, f"{name} is installed:\n{shown.stdout}"
        assert "not found" in shown.stderr.lower()
    assert not (bin_dir / "retraining-standins").exists()


def test_both_wheels_run_the_demo_outside_the_checkout(
    operator_wheel: Path, envtest_assets: Path, tmp_path: Path
) -> None:
    # Build from a copy: nothing of the checkout is on the path when the demo runs.
    source = tmp_path / "standins-src"
    shutil.copytree(
        STANDINS_SRC,
        source,
        ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__", "*.pyc"),
    )
    standins_wheel = _wheel(source, tmp_path / "standins-wheel")
    shipped = set(zipfile.ZipFile(standins_wheel).namelist())
    assert "retraining_standins/crds/retrainingpolicies.yaml" in shipped
    assert "retraining_standins/py.typed" in shipped

    bin_dir = _venv(tmp_path / "venv", operator_wheel, standins_wheel)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = _clean_env(bin_dir, elsewhere, KUBEBUILDER_ASSETS=str(envtest_assets))

    where = _run(
        [
            str(bin_dir / "python"),
            "-c",
            "import retraining_operator, retraining_standins; "
            "print(retraining_operator.__file__); print(retraining_standins.__file__)",
        ],
        cwd=elsewhere,
        env=env,
    ).stdout.split()
    assert all(Path(path).is_relative_to(tmp_path / "venv") for path in where), where

    help_text = _run([str(bin_dir / "retraining-standins"), "--help"], env=env).stdout
    assert _commands(help_text) == {"serve", "sandbox", "demo"}

    demo = subprocess.run(
        [str(bin_dir / "retraining-standins"), "demo"],
        capture_output=True,
        text=True,
        cwd=elsewhere,
        env=env,
        timeout=300,
    )
    output = f"{demo.stdout[-6000:]}\n{demo.stderr[-3000:]}"
    assert demo.returncode == 0, output
    assert "loop closed: endpoint demo-endpoint is InService" in demo.stdout, output
    assert "gate judged like with like: held-out mAP" in demo.stdout, output
