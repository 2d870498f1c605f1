"""The image's filesystem, built here without a Docker engine, and listed.

There is no Docker engine and no registry access here, so the base image
(python:3.11.x-slim-bookworm) cannot be pulled. What can be done honestly is to run the
Dockerfile's own RUN lines, verbatim, on what they act on:

- builder: its RUN line, read from the Dockerfile, runs in a shell on exactly the build context
  .dockerignore lets through; only the absolute paths /opt/build, /opt/venv and /wheels move
  into a temporary directory (and pip may use its cache: every file is checked against the
  lock's hashes anyway). `python` is this machine's CPython 3.11, like the base's.
- final: the base image's /usr/local is replaced by a stand-in made the way the official image
  makes its own: a CPython 3.11 `make install` layout (this machine's interpreter and standard
  library, its bin/ scripts), pip and setuptools from ensurepip, and wheel. The final stage's
  cleanup RUN line then runs on it verbatim, and /opt/venv is what the builder produced.

What is listed is therefore every Python file, package and program the Dockerfile puts in the
image or leaves there; Debian's own files of the base (no compiler in -slim) are not covered.

Needs PyPI (pip may use its cache). Marked slow; it stays in the default run (~1 min cold).
"""

from __future__ import annotations

import importlib.metadata
import os
import shutil
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

import pytest
from dockerkit import INSTALL_SUMMARY, build_context, stages
from helmkit import REPO_ROOT
from lockkit import RUNTIME_LOCK, parse_lock
from packaging.utils import canonicalize_name

pytestmark = pytest.mark.slow

PY = f"{sys.version_info.major}.{sys.version_info.minor}"
PACKAGING_TOOLS = {"pip", "setuptools", "wheel"}
SIZE_BUDGET_MB = 700  # /opt/venv; measured 566 MB with sagemaker-core 2.27 (docs/packaging.md)
TIME_BUDGET_S = 300


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


def _stage_env(stage: list[tuple[str, str]]) -> dict[str, str]:
    env: dict[str, str] = {}
    for keyword, args in stage:
        if keyword == "ENV":
            for item in args.split():
                key, _, value = item.partition("=")
                env[key] = value
    return env


def _python_on_path(directory: Path, python: Path) -> str:
    """A PATH whose `python` is `python` (the base image's `python` is /usr/local/bin/python)."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "python").symlink_to(python)
    return f"{directory}:/usr/bin:/bin"


def _build_venv(tmp_path: Path) -> tuple[Path, Path]:
    """The builder stage's RUN line on the build context; returns (venv, wheels)."""
    builder, _ = stages()
    (run,) = [args for keyword, args in builder if keyword == "RUN"]
    context = tmp_path / "src"
    for rel in sorted(build_context()):
        target = context / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO_ROOT / rel, target)
    opt = tmp_path / "opt"
    script = run.replace("/opt/", f"{opt}/").replace("/wheels", f"{tmp_path}/wheels")
    script = script.replace(" --no-cache-dir", "")  # pip's cache is fine here: hashes are checked
    assert "/opt/" not in script.replace(str(opt), "")
    env = {**os.environ, **_stage_env(builder)}
    env.pop("PIP_NO_CACHE_DIR", None)
    env["PATH"] = _python_on_path(tmp_path / "host-python", Path(sys.executable))
    _run(["sh", "-ec", script], cwd=context, env=env)
    return opt / "venv", tmp_path / "wheels"


def _standin_base(root: Path) -> Path:
    """/usr/local of a python:3.11-slim image, made from this machine's CPython 3.11."""
    base = Path(sys.base_prefix)
    prefix = root / "usr" / "local"
    (prefix / "bin").mkdir(parents=True)
    (prefix / "lib").mkdir()
    shutil.copy2(base / "bin" / f"python{PY}", prefix / "bin" / f"python{PY}")
    # What CPython's `make install` puts in bin/ besides the interpreter.
    links = {"python3": f"python{PY}", "python": f"python{PY}"}
    for script, link in [
        (f"pydoc{PY}", "pydoc3"),
        (f"idle{PY}", "idle3"),
        (f"2to3-{PY}", "2to3"),
        (f"python{PY}-config", "python3-config"),
    ]:
        shutil.copy2(base / "bin" / script, prefix / "bin" / script)
        links[link] = script
    for link, target in links.items():
        (prefix / "bin" / link).symlink_to(target)
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    ignore = shutil.ignore_patterns("test", "tests", "idle_test", "site-packages", "__pycache__")
    shutil.copytree(stdlib, prefix / "lib" / f"python{PY}", ignore=ignore)
    (prefix / "lib" / f"python{PY}" / "site-packages").mkdir()
    for library in base.joinpath("lib").glob("libpython*"):
        shutil.copy2(library, prefix / "lib" / library.name, follow_symlinks=False)
    shutil.copytree(base / "include", prefix / "include")
    python = prefix / "bin" / f"python{PY}"
    _run([str(python), "-m", "ensurepip", "--default-pip"])  # pip and setuptools
    _run([sys.executable, "-m", "pip", "--python", str(python), "install", "wheel"])
    return prefix


def _listing(prefix: Path) -> tuple[set[str], set[str]]:
    site = prefix / "lib" / f"python{PY}" / "site-packages"
    return {p.name for p in site.iterdir()}, {p.name for p in (prefix / "bin").iterdir()}


def _cleanup(prefix: Path, tmp_path: Path) -> None:
    """The final stage's cleanup RUN line, verbatim, with the stand-in's `python` on PATH."""
    _, final = stages()
    (run,) = [a for k, a in final if k == "RUN" and a.startswith("prefix=")]
    # Safety before running it on this machine: it deletes nothing outside the prefix.
    commands = [c.strip() for c in run.split("&&")]
    assert len(commands) == 2, commands
    assert commands[1].startswith("rm -rf ")
    targets = commands[1].split()[2:]
    assert all(t.startswith('"${prefix:?}"/') for t in targets), commands[1]
    env = {"PATH": f"{prefix / 'bin'}:/usr/bin:/bin", "HOME": str(tmp_path)}
    _run(["sh", "-ec", run], env=env)


def _distributions(site_packages: Path) -> dict[str, str]:
    return {
        canonicalize_name(d.metadata["Name"]): d.version
        for d in importlib.metadata.distributions(path=[str(site_packages)])
    }


def _installed_programs(site_packages: Path) -> set[str]:
    """bin/ entries the installed distributions record (entry points and packages' scripts)."""
    names: set[str] = set()
    for dist in importlib.metadata.distributions(path=[str(site_packages)]):
        for file in dist.files or []:
            parts = Path(file).parts
            if parts[:4] == ("..", "..", "..", "bin"):
                names.add(parts[4])
    return names


def test_final_image_filesystem_holds_python_and_the_operator_only(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    started = time.monotonic()
    venv, wheels = _build_venv(tmp_path)
    seconds = time.monotonic() - started
    (wheel,) = wheels.glob("a2i_retraining_operator-*.whl")

    base = _standin_base(tmp_path / "root")
    site_before, bin_before = _listing(base)
    assert {"pip", "setuptools", "wheel"} <= site_before  # the cleanup has work to do
    assert {"pip", "pip3", f"idle{PY}", f"python{PY}-config"} <= bin_before
    removed_mb = _tree_mb(base)
    _cleanup(base, tmp_path)
    removed_mb -= _tree_mb(base)

    # 1. The base's /usr/local: the interpreter and its standard library, nothing else.
    site_after, bin_after = _listing(base)
    assert site_after == set(), site_after
    assert bin_after == {"python", "python3", f"python{PY}"}, bin_after
    assert not (base / "lib" / f"python{PY}" / "ensurepip").exists()
    assert not (base / "include").exists()

    # 2. /opt/venv: exactly the locked runtime set plus the operator, at the locked versions.
    (site,) = (venv / "lib").glob("python3.*/site-packages")
    installed = _distributions(site)
    locked = {name: pin.version for name, pin in parse_lock(RUNTIME_LOCK.read_text()).items()}
    assert installed == {**locked, "a2i-retraining-operator": wheel.name.split("-")[1]}
    assert not PACKAGING_TOOLS & set(installed)
    assert not [p for p in site.iterdir() if p.name.startswith(("pip", "setuptools", "_distutils"))]
    # Programs: the interpreter's links and what the locked packages record, no more.
    programs = {p.name for p in (venv / "bin").iterdir()}
    interpreter = {"python", "python3", f"python{PY}"}
    assert programs - interpreter == _installed_programs(site), programs
    assert "retraining-operator" in programs
    # No caches: no wheel, download or pip cache left in the venv; the precompiled modules are
    # hash-based (SOURCE_DATE_EPOCH), so they do not vary with the build time.
    assert not list(venv.rglob("*.whl"))
    assert not [p for p in venv.rglob(".cache")]
    pycs = list(site.rglob("*.pyc"))
    assert pycs
    assert all(int.from_bytes(p.read_bytes()[4:8], "little") & 1 for p in pycs)

    # 3. It runs: the entry point and the operator's runtime modules, with these files alone;
    # the lock is closed (every dependency of every locked package is locked too).
    clean_env = {"PATH": f"{venv / 'bin'}:/usr/bin:/bin", "HOME": str(tmp_path)}
    help_text = _run([str(venv / "bin" / "retraining-operator"), "--help"], env=clean_env).stdout
    assert "usage: retraining-operator" in help_text
    run_help = _run([str(venv / "bin" / "retraining-operator"), "run", "--help"], env=clean_env)
    assert "RTP_METRICS_BIND_ADDRESS" in run_help.stdout
    python = venv / "bin" / "python"
    _run([str(python), "-c", "import retraining_operator.handlers, retraining_operator.runner"])
    _run([sys.executable, "-m", "pip", "--python", str(python), "check"])

    size_mb = _tree_mb(venv)
    summary = (
        f"final image filesystem: /opt/venv {size_mb:.0f} MB ({len(installed)} distributions, "
        f"{len(programs)} programs), built in {seconds:.0f} s; the cleanup removed "
        f"{removed_mb:.1f} MB of packaging tools, headers and scripts from the base's /usr/local"
    )
    print(summary)
    request.config.stash.setdefault(INSTALL_SUMMARY, []).append(summary)
    assert size_mb < SIZE_BUDGET_MB, summary
    assert seconds < TIME_BUDGET_S, summary
