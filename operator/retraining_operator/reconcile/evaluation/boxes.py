"""Ground truth and predictions as boxes per image, read from JSON lines (pure).

Ground truth is an augmented-manifest line as ingest writes it (the seed notebook's
format): `source-ref`, and under the label attribute `annotations` (`class_id`, `left`,
`top`, `width`, `height` in pixels) and `image_size` (`width`, `height`). A prediction is
the built-in object-detection algorithm's answer for one image, `{"prediction": [[class_id,
score, xmin, ymin, xmax, ymax], ...]}` with coordinates normalized to the image; with
`source-ref` when read from a JSON Lines file (`retraining-operator evaluate`) or joined to
its image by the caller (a Batch Transform `.out` object).

Boxes are kept as `(x, y, w, h)` in pixels, as COCO keeps them; IoU does not depend on the
scale, so normalized predictions are scaled by the image's own size.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

# A prediction line longer than this is refused (the algorithm returns at most a few
# hundred boxes; 1 MiB is ~20,000).
MAX_PREDICTIONS_PER_IMAGE = 20_000


class BoxesError(ValueError):
    """A line that is not what it claims to be; the message names the field."""


@dataclass(frozen=True)
class Box:
    class_id: int
    x: float
    y: float
    w: float
    h: float


@dataclass(frozen=True)
class Detection:
    class_id: int
    score: float
    x: float
    y: float
    w: float
    h: float


@dataclass(frozen=True)
class LabelledImage:
    """One held-out image: where it is, its size and its human-reviewed boxes."""

    source_ref: str
    width: float
    height: float
    boxes: tuple[Box, ...]


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise BoxesError(f"{where} is not a number")
    number = float(value)
    if not math.isfinite(number):
        raise BoxesError(f"{where} is not finite")
    return number


def _class_id(value: Any, where: str) -> int:
    number = _number(value, where)
    if number != int(number) or number < 0:
        raise BoxesError(f"{where} is not a class id (a whole number >= 0)")
    return int(number)


def labelled_image(line: Mapping[str, Any], attribute: str) -> LabelledImage:
    """The image of one augmented-manifest line (raises `BoxesError` naming the field)."""
    source = line.get("source-ref")
    if not isinstance(source, str) or not source:
        raise BoxesError("source-ref is missing")
    label = line.get(attribute)
    if not isinstance(label, Mapping):
        raise BoxesError(f"{attribute} is missing")
    sizes = label.get("image_size")
    if not isinstance(sizes, Sequence) or not sizes or not isinstance(sizes[0], Mapping):
        raise BoxesError(f"{attribute}.image_size is missing")
    width = _number(sizes[0].get("width"), f"{attribute}.image_size[0].width")
    height = _number(sizes[0].get("height"), f"{attribute}.image_size[0].height")
    if width <= 0 or height <= 0:
        raise BoxesError(f"{attribute}.image_size[0] is not a positive size")
    annotations = label.get("annotations")
    if not isinstance(annotations, Sequence):
        raise BoxesError(f"{attribute}.annotations is missing")
    boxes = []
    for index, box in enumerate(annotations):
        where = f"{attribute}.annotations[{index}]"
        if not isinstance(box, Mapping):
            raise BoxesError(f"{where} is not an object")
        boxes.append(
            Box(
                _class_id(box.get("class_id"), f"{where}.class_id"),
                _number(box.get("left"), f"{where}.left"),
                _number(box.get("top"), f"{where}.top"),
                _number(box.get("width"), f"{where}.width"),
                _number(box.get("height"), f"{where}.height"),
            )
        )
    return LabelledImage(source, width, height, tuple(boxes))


def detections(answer: Mapping[str, Any], image: LabelledImage) -> tuple[Detection, ...]:
    """The algorithm's answer for `image`, in pixels, in the answer's order."""
    rows = answer.get("prediction")
    if not isinstance(rows, Sequence) or isinstance(rows, str | bytes):
        raise BoxesError("prediction is missing")
    if len(rows) > MAX_PREDICTIONS_PER_IMAGE:
        raise BoxesError(f"prediction has {len(rows)} boxes (at most {MAX_PREDICTIONS_PER_IMAGE})")
    found = []
    for index, row in enumerate(rows):
        where = f"prediction[{index}]"
        if not isinstance(row, Sequence) or isinstance(row, str | bytes) or len(row) != 6:
            raise BoxesError(f"{where} is not [class_id, score, xmin, ymin, xmax, ymax]")
        class_id = _class_id(row[0], f"{where}[0]")
        score = _number(row[1], f"{where}[1]")
        xmin, ymin, xmax, ymax = (_number(v, f"{where}[{i + 2}]") for i, v in enumerate(row[2:]))
        found.append(
            Detection(
                class_id,
                score,
                xmin * image.width,
                ymin * image.height,
                (xmax - xmin) * image.width,
                (ymax - ymin) * image.height,
            )
        )
    return tuple(found)
