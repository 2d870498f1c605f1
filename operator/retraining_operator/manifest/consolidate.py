"""Several workers' boxes for one image -> one set of boxes, as Ground Truth consolidates.

A2I flow definitions may ask up to 3 workers per image (`HumanLoopConfig.TaskCount`);
Ground Truth's bounding-box consolidation (ACS-BoundingBox) matches boxes across
workers by their Jaccard index (IoU) and averages the matched ones. This module does
the same, deterministically and independent of the order of the workers.

`answers` holds one entry per distinct worker: every entry counts as one worker (shares,
confidences, `workers`). Ground Truth consolidates per worker, so a caller with several
answers of one worker passes only one of them (manifest/convert.py keeps each worker's
newest answer and treats the answers without a workerId as one anonymous worker). The steps:

1. **Match.** Every pair of boxes drawn by two different workers whose IoU reaches
   `iou_threshold` is a candidate. Candidates are taken best IoU first (ties by the
   boxes' content) and join their two clusters unless that would put two boxes of one
   worker in one cluster (greedy agglomerative matching, single linkage; documented in
   docs/dataset.md). Each box starts as its own cluster.
2. **Keep.** A cluster is kept when the share of workers who drew it reaches
   `min_agreement`; its confidence is that share (1 when every worker drew it).
3. **Label.** The majority label of the cluster; a tie cannot be settled and the image
   is `Disagreement`.
4. **Box.** Each coordinate is the mean over the cluster; a coordinate all members
   share is kept exactly as given; whole-pixel input is rounded to whole pixels (as
   Ground Truth writes them), then clamped into the image.
5. **Image.** When boxes were drawn but none was kept, or the image's agreement (below)
   is under `min_agreement` (the workers disagree on what, or how many, objects there
   are), the image is `Disagreement`.

Agreement of a worker with the consensus = the kept boxes the worker drew with the
consensus label / max(boxes the worker drew, boxes kept) (1 when both are 0). The
image's agreement is the mean over its workers; `agreeing` counts the workers whose
agreement reaches `min_agreement`.
"""

from __future__ import annotations

import hashlib
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

Number = int | float

# Float noise when comparing a share with a threshold (2/3 >= 0.6666 etc.).
_EPSILON = 1e-9


@dataclass(frozen=True)
class Box:
    """One box as a worker drew it; coordinates are the JSON numbers as given."""

    label: str
    left: Number
    top: Number
    width: Number
    height: Number

    @property
    def key(self) -> tuple[str, float, float, float, float]:
        return (
            self.label,
            float(self.left),
            float(self.top),
            float(self.width),
            float(self.height),
        )

    def to_json(self) -> dict[str, object]:
        return {
            "label": self.label,
            "left": self.left,
            "top": self.top,
            "width": self.width,
            "height": self.height,
        }


@dataclass(frozen=True)
class WorkerBoxes:
    """One worker's boxes (one entry per distinct worker): `worker` is a stable hash of
    the workerId (None for the anonymous worker, the answers without one)."""

    worker: str | None
    boxes: tuple[Box, ...]


@dataclass(frozen=True)
class ConsensusBox:
    label: str
    left: Number
    top: Number
    width: Number
    height: Number
    confidence: Number  # share of workers who drew it; exactly 1 when all did


@dataclass(frozen=True)
class Consensus:
    boxes: tuple[ConsensusBox, ...]
    workers: int
    agreement: float  # mean agreement of the workers with the consensus, 0..1
    per_worker: tuple[tuple[str | None, float], ...]  # (worker hash, agreement)
    agreeing: int  # workers whose agreement reaches min_agreement


@dataclass(frozen=True)
class Disagreement:
    detail: str


def worker_hash(worker_id: str) -> str:
    """A stable, non-reversible name for a worker (metrics, status, quarantine records)."""
    return "w" + hashlib.sha256(worker_id.encode("utf-8")).hexdigest()[:12]


def iou(a: Box, b: Box) -> float:
    """Jaccard index of two boxes (0 when they do not overlap)."""
    left = max(float(a.left), float(b.left))
    top = max(float(a.top), float(b.top))
    right = min(float(a.left) + float(a.width), float(b.left) + float(b.width))
    bottom = min(float(a.top) + float(a.height), float(b.top) + float(b.height))
    if right <= left or bottom <= top:
        return 0.0
    overlap = (right - left) * (bottom - top)
    union = float(a.width) * float(a.height) + float(b.width) * float(b.height) - overlap
    return overlap / union if union > 0 else 0.0


def consolidate(
    answers: Sequence[WorkerBoxes],
    *,
    image_width: float,
    image_height: float,
    iou_threshold: float,
    min_agreement: float,
) -> Consensus | Disagreement:
    """The consensus of `answers` (at least one, one per distinct worker) for an image of
    the given size."""
    workers = len(answers)
    if workers == 0:
        return Disagreement("no worker answered")
    # (worker index, box index, box) for every box drawn.
    items = [(w, b, box) for w, answer in enumerate(answers) for b, box in enumerate(answer.boxes)]
    clusters = _match(items, iou_threshold)

    kept: list[tuple[tuple[int, ...], ConsensusBox]] = []
    for members in clusters:
        share = len(members) / workers
        if share + _EPSILON < min_agreement:
            continue
        boxes = [items[m][2] for m in members]
        label = _majority_label(boxes)
        if label is None:
            labels = sorted({box.label for box in boxes})
            return Disagreement(
                f"{len(members)} workers drew one box but split on its label "
                f"({', '.join(repr(name[:64]) for name in labels[:5])})"
            )
        kept.append((members, _mean_box(boxes, label, share, image_width, image_height)))

    drawn = len(items)
    if drawn and not kept:
        return Disagreement(
            f"no box was drawn by at least {min_agreement:.0%} of the {workers} workers "
            f"({drawn} boxes in all)"
        )
    # Order: where the workers put the box in their answers, then its content.
    kept.sort(
        key=lambda entry: (
            min(items[m][1] for m in entry[0]),
            _consensus_key(entry[1]),
        )
    )
    per_worker = tuple(
        (answer.worker, _worker_agreement(w, answer, kept, items))
        for w, answer in enumerate(answers)
    )
    agreement = round(sum(score for _, score in per_worker) / workers, 4)
    if agreement + _EPSILON < min_agreement:
        counts = sorted(len(answer.boxes) for answer in answers)
        return Disagreement(
            f"the workers drew {counts} boxes for the {len(kept)} kept: their agreement with "
            f"the consensus is {agreement:.0%}, below minAgreement {min_agreement:.0%}"
        )
    return Consensus(
        boxes=tuple(box for _, box in kept),
        workers=workers,
        agreement=agreement,
        per_worker=per_worker,
        agreeing=sum(1 for _, score in per_worker if score + _EPSILON >= min_agreement),
    )


def _match(items: list[tuple[int, int, Box]], threshold: float) -> list[tuple[int, ...]]:
    """Greedy agglomerative matching: best IoU first, at most one box per worker per cluster."""
    candidates: list[tuple[float, tuple[object, ...], int, int]] = []
    for i in range(len(items)):
        for j in range(i + 1, len(items)):
            if items[i][0] == items[j][0]:
                continue
            score = iou(items[i][2], items[j][2])
            if score + _EPSILON >= threshold and score > 0:
                first, second = sorted(
                    [(items[i][2].key, items[i][1], i), (items[j][2].key, items[j][1], j)],
                    key=lambda entry: entry[:2],
                )
                candidates.append((-score, (first[:2], second[:2]), first[2], second[2]))
    candidates.sort(key=lambda c: (c[0], c[1]))
    cluster_of = list(range(len(items)))
    members: dict[int, list[int]] = {i: [i] for i in range(len(items))}
    workers_of: dict[int, set[int]] = {i: {items[i][0]} for i in range(len(items))}
    for _, _, i, j in candidates:
        a, b = cluster_of[i], cluster_of[j]
        if a == b or workers_of[a] & workers_of[b]:
            continue
        for m in members[b]:
            cluster_of[m] = a
        members[a].extend(members.pop(b))
        workers_of[a] |= workers_of.pop(b)
    return [tuple(sorted(group)) for group in members.values()]


def _majority_label(boxes: Sequence[Box]) -> str | None:
    counts = Counter(box.label for box in boxes).most_common()
    if len(counts) > 1 and counts[0][1] == counts[1][1]:
        return None
    return counts[0][0]


def _mean(values: Sequence[Number]) -> Number:
    first = values[0]
    if all(value == first and type(value) is type(first) for value in values):
        return first  # every worker gave this value: keep it exactly as given
    mean = math.fsum(float(value) for value in values) / len(values)
    if all(isinstance(value, int) for value in values):
        return math.floor(mean + 0.5)  # whole pixels in, whole pixels out (half up)
    return mean


def _mean_box(
    boxes: Sequence[Box], label: str, share: float, image_width: float, image_height: float
) -> ConsensusBox:
    left = _mean([box.left for box in boxes])
    top = _mean([box.top for box in boxes])
    width = _mean([box.width for box in boxes])
    height = _mean([box.height for box in boxes])
    # Inside the image: the mean of boxes inside is inside; rounding may overshoot a pixel.
    left, top = max(left, 0), max(top, 0)
    if left + width > image_width:
        width = image_width - left
    if top + height > image_height:
        height = image_height - top
    if width <= 0 or height <= 0:  # rounding ate a sub-pixel box: keep the exact mean
        left = max(0.0, math.fsum(float(b.left) for b in boxes) / len(boxes))
        top = max(0.0, math.fsum(float(b.top) for b in boxes) / len(boxes))
        width = min(math.fsum(float(b.width) for b in boxes) / len(boxes), image_width - left)
        height = min(math.fsum(float(b.height) for b in boxes) / len(boxes), image_height - top)
    confidence: Number = 1 if share >= 1 - _EPSILON else round(share, 2)
    return ConsensusBox(label, left, top, width, height, confidence)


def _consensus_key(box: ConsensusBox) -> tuple[str, float, float, float, float]:
    return (box.label, float(box.left), float(box.top), float(box.width), float(box.height))


def _worker_agreement(
    worker: int,
    answer: WorkerBoxes,
    kept: list[tuple[tuple[int, ...], ConsensusBox]],
    items: list[tuple[int, int, Box]],
) -> float:
    if not answer.boxes and not kept:
        return 1.0
    matched = sum(
        1
        for members, box in kept
        if any(items[m][0] == worker and items[m][2].label == box.label for m in members)
    )
    return round(matched / max(len(answer.boxes), len(kept)), 4)
