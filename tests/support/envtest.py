"""The envtest control plane for the tests: the stand-ins' `kubeapi`, plus this checkout's
build cache as the default place for the binaries (the stand-ins package itself knows nothing
about the checkout: it takes `--assets` or `KUBEBUILDER_ASSETS`)."""

from __future__ import annotations

import os
import re
from pathlib import Path

from retraining_standins.kubeapi import (
    ADMIN_USER,
    ControlPlane,
    EnvtestError,
    free_port,
    running,
    tail,
)
from retraining_standins.kubeapi import find_assets as find_assets_in

REPO_ROOT = Path(__file__).resolve().parents[2]
ENVTEST_DIR = REPO_ROOT / "tests" / "envtest"
BUILD_HINT = "run `bash tests/envtest/build.sh` (or `make envtest`)"


def pinned_k8s_version() -> str:
    """The k8s.io/kubernetes release pinned in tests/envtest/apiserver/go.mod, without the 'v'."""
    gomod = (ENVTEST_DIR / "apiserver" / "go.mod").read_text()
    match = re.search(r"^require k8s\.io/kubernetes v(\S+)$", gomod, re.MULTILINE)
    if not match:
        raise EnvtestError("cannot find `require k8s.io/kubernetes vX.Y.Z` in apiserver/go.mod")
    return match.group(1)


def default_assets_dir() -> Path:
    """Where tests/envtest/build.sh puts the binaries (its ENVTEST_CACHE logic)."""
    root = os.environ.get("ENVTEST_CACHE")
    base = Path(root) if root else Path.home() / ".cache" / "a2i-retraining-operator"
    return base / "envtest" / pinned_k8s_version()


def find_assets() -> Path:
    """KUBEBUILDER_ASSETS, else the default build cache; EnvtestError says how to build them."""
    ci = " (CI must build them before the tests: `make test` does)" if os.environ.get("CI") else ""
    hint = (
        f"{BUILD_HINT}{ci}, then re-run pytest (build.sh prints the assets directory; export it "
        "as KUBEBUILDER_ASSETS if it is not the default cache)"
    )
    return find_assets_in(default=default_assets_dir(), hint=hint)


__all__ = [
    "ADMIN_USER",
    "BUILD_HINT",
    "ENVTEST_DIR",
    "REPO_ROOT",
    "ControlPlane",
    "EnvtestError",
    "default_assets_dir",
    "find_assets",
    "free_port",
    "pinned_k8s_version",
    "running",
    "tail",
]
