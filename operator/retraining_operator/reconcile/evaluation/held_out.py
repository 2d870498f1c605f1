"""One model's answers on the held-out images -> its scores: what the gate and
`retraining-operator evaluate` both call (pure).

The held-out images are augmented-manifest lines (ground truth); a model's answers are
keyed by `source-ref`. Every image counts: one the model said nothing about has no
detections (its boxes are all missed), and it is named in `problems` so a caller can tell
"no answer" from "found nothing". An answer for an image that is not held out is ignored
and named too.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from retraining_operator.reconcile.evaluation.average_precision import Matched, match
from retraining_operator.reconcile.evaluation.boxes import (
    BoxesError,
    Detection,
    LabelledImage,
    detections,
    labelled_image,
)

# A manifest line's label attribute is the one key that is neither source-ref nor metadata.
_NOT_LABELS = ("source-ref",)


@dataclass
class HeldOut:
    """The held-out images, read from manifest lines; `problems` names lines left out."""

    images: list[LabelledImage] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def label_attribute(line: Mapping[str, Any]) -> str | None:
    """The label attribute of a manifest line (`<name>` beside `<name>-metadata`)."""
    names = [k for k in line if k not in _NOT_LABELS and not k.endswith("-metadata")]
    return names[0] if len(names) == 1 else None


def held_out(lines: Iterable[tuple[str, Mapping[str, Any]]], attribute: str) -> HeldOut:
    """`(where, parsed line)` pairs -> the images; a bad line or a repeated image is named
    in `problems` (the first line of an image wins) and left out."""
    out = HeldOut()
    seen: set[str] = set()
    for where, line in lines:
        try:
            image = labelled_image(line, attribute)
        except BoxesError as error:
            out.problems.append(f"{where}: {error}")
            continue
        if image.source_ref in seen:
            out.problems.append(f"{where}: {image.source_ref} again (the first line counts)")
            continue
        seen.add(image.source_ref)
        out.images.append(image)
    return out


@dataclass(frozen=True)
class Answered:
    matched: Matched
    problems: tuple[str, ...]


def answered(images: Sequence[LabelledImage], answers: Mapping[str, Mapping[str, Any]]) -> Answered:
    """Match a model's answers (by source-ref) against every held-out image."""
    problems = []
    predicted: list[list[Detection]] = []
    for image in images:
        answer = answers.get(image.source_ref)
        if answer is None:
            problems.append(f"{image.source_ref}: no prediction (counted as nothing found)")
            predicted.append([])
            continue
        try:
            predicted.append(list(detections(answer, image)))
        except BoxesError as error:
            problems.append(f"{image.source_ref}: {error} (counted as nothing found)")
            predicted.append([])
    known = {image.source_ref for image in images}
    problems += [f"{ref}: not a held-out image (ignored)" for ref in answers if ref not in known]
    return Answered(match(images, predicted), tuple(problems))
