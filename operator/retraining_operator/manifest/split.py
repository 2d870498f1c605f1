"""Stable train/validation split by a hash of the image key.

An image's set is a pure function of its `source-ref` and `holdoutPercent`: the same
image lands in the same set in every run, so a picture the model was validated on never
becomes training data later (and the other way round), whatever else changes.
"""

from __future__ import annotations

import hashlib
import json

BUCKETS = 100


def split_bucket(source_ref: str) -> int:
    """0..99, uniform over image keys, stable forever (SHA-256, first 8 bytes)."""
    digest = hashlib.sha256(source_ref.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % BUCKETS


def is_validation(source_ref: str, holdout_percent: int) -> bool:
    """True for the `holdout_percent` % of images that belong to the validation set."""
    return split_bucket(source_ref) < holdout_percent


def source_ref_of(line: bytes | str) -> str:
    """The `source-ref` of one manifest line (raises ValueError when there is none)."""
    document = json.loads(line)
    reference = document.get("source-ref") if isinstance(document, dict) else None
    if not isinstance(reference, str):
        raise ValueError("manifest line without a string source-ref")
    return reference
