"""Fake images that carry their own ground truth, so an emulated model can "see" them.

A seeded image is the JPEG start-of-image marker followed by its truth as JSON:

    b"\\xff\\xd8" b'{"standinTruth":{"width":640,"height":480,"boxes":[[7,10,20,100,80]]}}'

Anything that reads it as bytes (S3, the operator) sees an object starting like a JPEG; the
Batch Transform emulator reads the truth back with `truth_of` and answers as a model of a
chosen quality would (`detector.py`). Boxes are `(class_id, left, top, width, height)` in
pixels, as in an augmented manifest's annotations.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NamedTuple

JPEG_SOI = b"\xff\xd8"
_KEY = "standinTruth"


class TrueBox(NamedTuple):
    class_id: int
    left: float
    top: float
    width: float
    height: float


class Truth(NamedTuple):
    width: int
    height: int
    boxes: tuple[TrueBox, ...]


def image_bytes(width: int, height: int, boxes: Iterable[Sequence[float]]) -> bytes:
    """A fake JPEG of `width` x `height` pixels whose objects are `boxes`
    (`(class_id, left, top, width, height)` each)."""
    rows = [_box(row) for row in boxes]
    body = {_KEY: {"width": int(width), "height": int(height), "boxes": [list(b) for b in rows]}}
    return JPEG_SOI + json.dumps(body, separators=(",", ":")).encode()


def truth_of(data: bytes) -> Truth | None:
    """The truth an `image_bytes` image carries; None for any other bytes."""
    if not data.startswith(JPEG_SOI):
        return None
    try:
        parsed: Any = json.loads(data[len(JPEG_SOI) :])
        truth = parsed[_KEY]
        width, height = truth["width"], truth["height"]
        boxes = tuple(_box(row) for row in truth["boxes"])
    except (ValueError, KeyError, TypeError, IndexError):
        return None
    if not (_whole(width) and _whole(height)) or width <= 0 or height <= 0:
        return None
    return Truth(int(width), int(height), boxes)


def truth_of_a2i_answer(answer: Mapping[str, Any], classes: Sequence[str]) -> Truth | None:
    """The truth of one A2I human answer: its image size and boxes, a label's class id being
    its index in `classes` (boxes of labels outside `classes` are left out). None if the
    answer is not a bounding-box answer."""
    try:
        result = answer["answerContent"]["annotatedResult"]
        size = result["inputImageProperties"]
        width, height = size["width"], size["height"]
        drawn = result["boundingBoxes"]
        boxes = tuple(
            _box((classes.index(b["label"]), b["left"], b["top"], b["width"], b["height"]))
            for b in drawn
            if isinstance(b, Mapping) and b.get("label") in classes
        )
    except (KeyError, TypeError, ValueError):
        return None
    if not (_whole(width) and _whole(height)) or width <= 0 or height <= 0:
        return None
    return Truth(int(width), int(height), boxes)


def truth_of_a2i_output(document: Any, classes: Sequence[str]) -> Truth | None:
    """The truth of an A2I output.json (its first human answer), None if it has none."""
    if not isinstance(document, Mapping):
        return None
    answers = document.get("humanAnswers")
    if not isinstance(answers, Sequence) or not answers or not isinstance(answers[0], Mapping):
        return None
    return truth_of_a2i_answer(answers[0], classes)


def truth_of_manifest_line(line: Mapping[str, Any], attribute: str) -> Truth | None:
    """The truth of an augmented-manifest line (its `image_size` and `annotations` under
    `attribute`), None if it has none."""
    try:
        label = line[attribute]
        size = label["image_size"][0]
        width, height = size["width"], size["height"]
        boxes = tuple(
            _box((a["class_id"], a["left"], a["top"], a["width"], a["height"]))
            for a in label["annotations"]
        )
    except (KeyError, TypeError, ValueError, IndexError):
        return None
    if not (_whole(width) and _whole(height)) or width <= 0 or height <= 0:
        return None
    return Truth(int(width), int(height), boxes)


def _whole(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value == int(value)


def _box(row: Sequence[Any]) -> TrueBox:
    if isinstance(row, str | bytes) or len(row) != 5:
        raise ValueError(f"a box is (class_id, left, top, width, height), not {row!r}")
    class_id, left, top, width, height = row
    if not _whole(class_id) or class_id < 0:
        raise ValueError(f"class id {class_id!r} is not a whole number >= 0")
    numbers = (left, top, width, height)
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in numbers):
        raise ValueError(f"box {row!r} has a coordinate that is not a number")
    if not all(math.isfinite(v) for v in numbers):
        raise ValueError(f"box {row!r} has a coordinate that is not finite")
    return TrueBox(int(class_id), _plain(left), _plain(top), _plain(width), _plain(height))


def _plain(value: float) -> float:
    """Whole pixels stay ints (compact JSON, exact round trips)."""
    return int(value) if value == int(value) else float(value)
