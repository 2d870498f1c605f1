"""Training image URIs of SageMaker built-in algorithms, from the SageMaker SDK's own data.

The authoritative registry table ships with sagemaker-core as JSON
(`sagemaker/core/image_uri_config/<algorithm>.json`), but importing
`sagemaker.core.image_uris` costs ~1.5 s and ~130 MB of RSS (it pulls in pandas,
scipy and numpy). This module reads the same JSON file from the installed
distribution *without importing any sagemaker module* (the file is located through
`importlib.metadata`), and builds the URI the way `image_uris.retrieve` does:
`<account>.dkr.<ecr hostname>/<repository>:<tag>`, with the ECR hostname from
botocore's endpoint data (so the China and isolated partitions get their own DNS
suffix). A test proves the result equals `image_uris.retrieve(...)` for every region
in the file. Results are cached per (algorithm, region, version).

Only the shape of the built-in algorithm files (one image per version and region, no
per-processor or per-Python variants) is supported; anything else is refused loudly
instead of guessed.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import metadata
from pathlib import Path
from typing import Any

from botocore.loaders import create_loader
from botocore.regions import EndpointResolver

from retraining_operator.errors import NeedsAttention

SDK_DISTRIBUTIONS = (
    ("sagemaker-core", "sagemaker/core/image_uri_config"),
    ("sagemaker", "sagemaker/image_uri_config"),  # the classic SDK, if that is what is installed
)


class ImageLookupError(NeedsAttention, LookupError):
    """No image URI for this algorithm/region/version (the message says which and why)."""

    def __init__(self, message: str) -> None:
        super().__init__("ImageNotFound", message)


@cache
def _config_path(algorithm: str) -> Path:
    tried: list[str] = []
    for dist_name, folder in SDK_DISTRIBUTIONS:
        try:
            dist = metadata.distribution(dist_name)
        except metadata.PackageNotFoundError:
            tried.append(f"{dist_name} (not installed)")
            continue
        path = Path(str(dist.locate_file(f"{folder}/{algorithm}.json")))
        if path.is_file():
            return path
        tried.append(f"{dist_name} (no {folder}/{algorithm}.json)")
    raise ImageLookupError(
        f"no image URI data for algorithm {algorithm!r}: looked in {', '.join(tried)}; "
        "set training.image explicitly or install sagemaker-core"
    )


@cache
def _config(algorithm: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(_config_path(algorithm).read_text(encoding="utf-8"))
    return data


@cache
def _endpoint_resolver() -> EndpointResolver:
    return EndpointResolver(create_loader().load_data("endpoints"))


def ecr_hostname(region: str) -> str:
    """The ECR registry host for a region (as `sagemaker.core.image_uris` derives it)."""
    endpoint = _endpoint_resolver().construct_endpoint("ecr", region)
    if not endpoint and region == "il-central-1":  # the SDK's own special case
        endpoint = {"hostname": f"ecr.{region}.amazonaws.com"}
    if not endpoint:
        raise ImageLookupError(f"botocore knows no ECR endpoint for region {region!r}")
    return str(endpoint["hostname"])


def _training_scope(config: dict[str, Any], algorithm: str) -> dict[str, Any]:
    scopes = config.get("scope")
    if isinstance(scopes, list):
        if "training" not in scopes:
            raise ImageLookupError(f"{algorithm} has no training image (scopes: {scopes})")
        return config
    scoped = config.get("training")
    if not isinstance(scoped, dict):
        raise ImageLookupError(f"{algorithm} has no training image configuration")
    return scoped


def _version_config(config: dict[str, Any], algorithm: str, version: str) -> tuple[str, Any]:
    versions: dict[str, Any] = config.get("versions", {})
    aliases: dict[str, str] = config.get("version_aliases", {})
    if len(versions) == 1 and version not in aliases:
        # As the SDK: an algorithm with one version answers every version request with it.
        return next(iter(versions.items()))
    key = aliases.get(version, version)
    if key not in versions:
        known = sorted(set(versions) | set(aliases))
        raise ImageLookupError(f"{algorithm} has no version {version!r} (known: {known})")
    return version, versions[key]


@cache
def algorithm_image_uri(algorithm: str, region: str, version: str = "1") -> str:
    """The training image of a built-in algorithm, e.g. object-detection in us-east-1:

    `811284229777.dkr.ecr.us-east-1.amazonaws.com/object-detection:1`
    """
    config = _training_scope(_config(algorithm), algorithm)
    resolved_version, entry = _version_config(config, algorithm, version)
    if not isinstance(entry, dict) or "registries" not in entry or "repository" not in entry:
        raise ImageLookupError(
            f"{algorithm} {version}: image data has per-processor or per-Python variants, "
            "which this lookup does not support; set training.image explicitly"
        )
    if config.get("processors") or entry.get("processors") or entry.get("container_version"):
        raise ImageLookupError(
            f"{algorithm} {version}: image depends on the instance's processor; "
            "set training.image explicitly"
        )
    registries: dict[str, str] = entry["registries"]
    if region not in registries:
        raise ImageLookupError(
            f"{algorithm} {version} is not published in region {region!r} "
            f"(regions: {', '.join(sorted(registries))})"
        )
    tag = entry.get("tag_prefix", resolved_version)
    repository = f"{entry['repository']}:{tag}" if tag else entry["repository"]
    return f"{registries[region]}.dkr.{ecr_hostname(region)}/{repository}"


def published_regions(algorithm: str, version: str = "1") -> list[str]:
    """Regions the SDK's data lists for this algorithm version (sorted)."""
    config = _training_scope(_config(algorithm), algorithm)
    _, entry = _version_config(config, algorithm, version)
    return sorted(entry.get("registries", {}))
