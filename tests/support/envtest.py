"""The envtest control plane (moved to the package for the demo; see standins/kubeapi.py)."""

from retraining_operator.standins.kubeapi import (
    ADMIN_USER,
    BUILD_HINT,
    ENVTEST_DIR,
    REPO_ROOT,
    ControlPlane,
    EnvtestError,
    default_assets_dir,
    find_assets,
    free_port,
    pinned_k8s_version,
    running,
    tail,
)

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
