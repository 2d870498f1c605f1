"""One line per image per dataset: the newest completed review of an image wins.

An image sent to review twice (two human loops) yields two manifest lines that may
contradict each other (class 11 in one, class 7 in the other for the same box).
Training on both teaches the model noise, so a run's dataset keeps, per `source-ref`,
the line whose `<attribute>-metadata.creation-date` (the review's submission time) is
the newest; equal times fall back to the larger `job-name` (`a2i/<loop name>`), then to
the line's digest, so the choice never depends on the order the lines were read in.
The others are *superseded*.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any

# Sorts before any real review: a line without a usable creation-date loses to one with it.
_NEVER = datetime.min.replace(tzinfo=UTC)

# (creation-date, job-name, digest of the line): the digest settles two lines that agree
# on both (a loop converted twice never reaches one dataset, but the order must not matter).
ReviewKey = tuple[datetime, str, str]


def review_key(line: bytes | str, attribute_name: str) -> tuple[str, ReviewKey]:
    """(`source-ref`, the key that orders reviews of that image) of one manifest line.

    Raises ValueError for a line without a string `source-ref` (never written by ingest).
    """
    document = json.loads(line)
    if not isinstance(document, dict) or not isinstance(document.get("source-ref"), str):
        raise ValueError("manifest line without a string source-ref")
    metadata: Any = document.get(f"{attribute_name}-metadata")
    when, job = _NEVER, ""
    if isinstance(metadata, dict):
        name = metadata.get("job-name")
        job = name if isinstance(name, str) else ""
        created = metadata.get("creation-date")
        if isinstance(created, str):
            when = _parse(created)
    raw = line if isinstance(line, bytes) else line.encode("utf-8")
    digest = hashlib.sha256(raw.strip()).hexdigest()[:16]
    return document["source-ref"], (when, job, digest)


def _parse(text: str) -> datetime:
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        return _NEVER
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


class NewestReviews:
    """Pass 1 collects the newest review key per image; pass 2 asks `keep(line)`.

    Holds one key per distinct image (not the lines), so memory grows with the number
    of images in one run, which the ledger already bounds.
    """

    def __init__(self, attribute_name: str) -> None:
        self.attribute_name = attribute_name
        self.newest: dict[str, ReviewKey] = {}
        self.lines = 0
        self._emitted: set[str] = set()

    def add(self, line: bytes | str) -> str:
        """Record one line of pass 1; returns its `source-ref`."""
        reference, key = review_key(line, self.attribute_name)
        self.lines += 1
        current = self.newest.get(reference)
        if current is None or key > current:
            self.newest[reference] = key
        return reference

    @property
    def superseded(self) -> int:
        return self.lines - len(self.newest)

    def keep(self, line: bytes | str) -> tuple[str, bool]:
        """Pass 2: (`source-ref`, whether this line is its image's one newest review)."""
        reference, key = review_key(line, self.attribute_name)
        if key != self.newest.get(reference) or reference in self._emitted:
            return reference, False
        self._emitted.add(reference)
        return reference, True
