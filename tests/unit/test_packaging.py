"""The package's front door: entry points work and the layer contracts bite."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
STANDINS_PKG = ROOT / "tests" / "standins-pkg"


def test_console_script_help() -> None:
    out = subprocess.run(
        [str(BIN / "retraining-operator"), "--help"], capture_output=True, text=True, check=True
    )
    assert "run" in out.stdout
    assert "usage: retraining-operator" in out.stdout
    # The stand-ins and the demo are the other distribution's commands (`retraining-standins`).
    commands = set(re.findall(r"^ {4}(\w\S*)", out.stdout, re.MULTILINE))
    assert commands == {"run", "plan", "manifest", "evaluate", "status", "iam-policy", "tenant"}


def test_python_dash_m_help() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "retraining_operator", "run", "--help"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "--namespace" in out.stdout
    assert "RTP_WATCH_NAMESPACES" in out.stdout


def test_runtime_path_does_not_load_standins_or_heavy_sdk() -> None:
    code = (
        "import sys, retraining_operator.handlers, retraining_operator.runner;"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
        "{'moto', 'werkzeug', 'pandas', 'scipy', 'sagemaker'} "
        "or m.startswith('retraining_standins'));"
        "print(','.join(bad))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_import_linter_refuses_boto3_in_reconcile(tmp_path: Path) -> None:
    # A copy of the package with one forbidden import must break the layer contract.
    shutil.copytree(ROOT / "operator", tmp_path / "operator")
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    probe = tmp_path / "operator" / "retraining_operator" / "reconcile" / "_probe.py"
    probe.write_text("import boto3\n")
    env = {"PYTHONPATH": f"{tmp_path / 'operator'}:{STANDINS_PKG}", "PATH": str(BIN)}
    result = subprocess.run(
        [str(BIN / "lint-imports"), "--no-cache"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode != 0
    assert "retraining_operator.reconcile is not allowed to import boto3" in result.stdout
    probe.unlink()
    clean = subprocess.run(
        [str(BIN / "lint-imports"), "--no-cache"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
    )
    assert clean.returncode == 0, clean.stdout


def test_import_linter_refuses_the_standins_in_the_operator(tmp_path: Path) -> None:
    # The stand-ins depend on the operator, never the reverse: any operator module that imports
    # them (even the CLI, off the runtime path) breaks the contract.
    shutil.copytree(ROOT / "operator", tmp_path / "operator")
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    probe = tmp_path / "operator" / "retraining_operator" / "commands" / "_probe.py"
    probe.write_text("import retraining_standins.kubeapi\n")
    env = {"PYTHONPATH": f"{tmp_path / 'operator'}:{STANDINS_PKG}", "PATH": str(BIN)}
    result = subprocess.run(
        [str(BIN / "lint-imports"), "--no-cache"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode != 0
    assert "retraining_operator is not allowed to import retraining_standins" in result.stdout
    assert "retraining_operator.commands._probe -> retraining_standins.kubeapi" in result.stdout


def test_standins_ship_an_exact_copy_of_the_crd() -> None:
    # The demo installs the CRD from its own package data, so it runs from the installed wheels.
    source = (ROOT / "crds" / "retrainingpolicies.yaml").read_bytes()
    copy = (STANDINS_PKG / "retraining_standins" / "crds" / "retrainingpolicies.yaml").read_bytes()
    assert copy == source, (
        "run: cp crds/retrainingpolicies.yaml tests/standins-pkg/retraining_standins/crds/"
    )
