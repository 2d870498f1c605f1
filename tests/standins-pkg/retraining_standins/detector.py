"""The emulated object detector: what a model of a given quality answers for an image.

The built-in object-detection algorithm answers `{"prediction": [[class_id, score, xmin,
ymin, xmax, ymax], ...]}`, coordinates normalized to the image. The emulated model sees the
image's true boxes (`images.truth_of`) and, for each one, with probability q (its
`ModelQuality` for the box's class) finds it: a box a few percent off (IoU >= 0.7 with the
truth) scored in [0.55, 1.0). Otherwise it misses it: nothing, or (half the time) a box of
that class far from every true box of the class, scored in [0.05, 0.5). Now and then it
also reports a low-scored false positive. So a model's mAP at IoU 0.5 is about its quality,
a better model measurably beats a worse one on the same images, and a class of quality 0
has an AP of about 0.

Every draw is seeded by the model's data URL, the image URI and the box's index, through
`random.Random(str)` (SHA-512 of the string, never Python's salted `hash()`), so the same
model answers the same image with the same bytes in every process.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from retraining_standins.images import TrueBox, Truth

JITTER = 0.04
"""A found box's edges move by at most this fraction of the box's size (IoU >= 0.7)."""
FAR_BOX_CHANCE = 0.5
"""The chance that a missed object gets a badly placed box instead of none."""
FALSE_POSITIVE_CHANCE = 0.2
"""The chance, per image with objects, of one extra low-scored box."""
FAR_IOU = 0.3
"""A badly placed box overlaps no true box of its class more than this."""
DIGITS = 6


@dataclass(frozen=True)
class ModelQuality:
    """How good a model is: the chance it finds an object, overall or per class id."""

    overall: float = 0.7
    per_class: Mapping[int, float] = field(default_factory=dict)
    """Overrides `overall` for these class ids (e.g. `{3: 0.0}`: the model forgot class 3)."""

    def __post_init__(self) -> None:
        for name, value in [("overall", self.overall), *self.per_class.items()]:
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"quality of {name} must be in [0, 1], not {value}")

    def of(self, class_id: int) -> float:
        return float(self.per_class.get(class_id, self.overall))

    @classmethod
    def from_json(cls, body: Mapping[str, Any]) -> ModelQuality:
        """`{"overall": 0.8, "perClass": {"3": 0.0}}` (the control API's form)."""
        per_class = body.get("perClass") or body.get("per_class") or {}
        return cls(
            overall=float(body.get("overall", 0.7)),
            per_class={int(k): float(v) for k, v in dict(per_class).items()},
        )


QualityProvider = Callable[[str, str], ModelQuality]
"""`provider(model_name, model_data_url) -> ModelQuality`."""


def default_quality(model_name: str, model_data_url: str) -> ModelQuality:
    return ModelQuality()


def quality_table(
    models: Mapping[str, ModelQuality], default: ModelQuality | None = None
) -> QualityProvider:
    """A provider that looks a model up by its data URL, then by its name; `default` (or
    `ModelQuality()`) for every other model."""
    table = dict(models)
    fallback = default or ModelQuality()

    def provider(model_name: str, model_data_url: str) -> ModelQuality:
        return table.get(model_data_url) or table.get(model_name) or fallback

    return provider


def predict(truth: Truth | None, quality: ModelQuality, *, model: str, image: str) -> list[Any]:
    """The model's prediction rows for one image, highest score first (`model`: its data
    URL, `image`: the image URI; both seed the draws). No truth: no objects found."""
    if truth is None or not truth.boxes:
        return []
    found: list[tuple[int, float, float, float, float, float]] = []
    for index, box in enumerate(truth.boxes):
        rng = random.Random(f"{model}\n{image}\n{index}")
        if rng.random() < quality.of(box.class_id):
            found.append((box.class_id, rng.uniform(0.55, 1.0), *_jittered(rng, box, truth)))
        elif rng.random() < FAR_BOX_CHANCE:
            far = _far_box(rng, box.class_id, truth)
            if far is not None:
                found.append((box.class_id, rng.uniform(0.05, 0.5), *far))
    rng = random.Random(f"{model}\n{image}\nfalse-positive")
    if rng.random() < FALSE_POSITIVE_CHANCE:
        class_id = rng.choice(sorted({b.class_id for b in truth.boxes}))
        far = _far_box(rng, class_id, truth)
        if far is not None:
            found.append((class_id, rng.uniform(0.05, 0.5), *far))
    found.sort(key=lambda row: -row[1])
    return [[float(class_id), *(round(v, DIGITS) for v in rest)] for class_id, *rest in found]


def _normalized(
    left: float, top: float, right: float, bottom: float, truth: Truth
) -> tuple[float, float, float, float]:
    def clamp(value: float) -> float:
        return min(1.0, max(0.0, value))

    return (
        clamp(left / truth.width),
        clamp(top / truth.height),
        clamp(right / truth.width),
        clamp(bottom / truth.height),
    )


def _jittered(rng: random.Random, box: TrueBox, truth: Truth) -> tuple[float, float, float, float]:
    dx, dy = box.width * JITTER, box.height * JITTER
    left = box.left + rng.uniform(-dx, dx)
    top = box.top + rng.uniform(-dy, dy)
    right = box.left + box.width + rng.uniform(-dx, dx)
    bottom = box.top + box.height + rng.uniform(-dy, dy)
    return _normalized(left, top, right, bottom, truth)


def _iou(a: tuple[float, float, float, float], b: TrueBox) -> float:
    left, top, right, bottom = a
    w = min(right, b.left + b.width) - max(left, b.left)
    h = min(bottom, b.top + b.height) - max(top, b.top)
    if w <= 0 or h <= 0:
        return 0.0
    inter = w * h
    union = (right - left) * (bottom - top) + b.width * b.height - inter
    return inter / union if union > 0 else 0.0


def _far_box(
    rng: random.Random, class_id: int, truth: Truth
) -> tuple[float, float, float, float] | None:
    """A box overlapping no true box of `class_id` by more than FAR_IOU (None if ten tries
    find no such place)."""
    same = [b for b in truth.boxes if b.class_id == class_id]
    for _ in range(10):
        width = rng.uniform(0.05, 0.3) * truth.width
        height = rng.uniform(0.05, 0.3) * truth.height
        left = rng.uniform(0, truth.width - width)
        top = rng.uniform(0, truth.height - height)
        candidate = (left, top, left + width, top + height)
        if all(_iou(candidate, b) <= FAR_IOU for b in same):
            return _normalized(*candidate, truth)
    return None
