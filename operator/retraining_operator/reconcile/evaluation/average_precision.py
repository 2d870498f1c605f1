"""Mean average precision at IoU 0.5, exactly as pycocotools' COCOeval computes it (pure).

`match` does what COCOeval's `evaluateImg` does for every image and class: the image's
detections of the class sorted by score (stable), the best 100 kept, each matched greedily
to the unmatched ground-truth box of highest IoU >= 0.5 (a later box wins a tie). The result
is per-class arrays in COCOeval's `accumulate` order (all images' kept detections, sorted
by score, stable in image order), so `average_precision` is a few vectorized lines and the
bootstrap (`bootstrap.py`) can re-weigh images without matching again.

AP of a class: precision made monotone from the right, read at the 101 recall thresholds
0, 0.01, ..., 1 (the first detection reaching each; 0 past the last), averaged. mAP: the
mean over the classes with at least one ground-truth box; detections of other classes do
not count. Coordinates are COCO's `(x, y, w, h)`; a detection whose area is negative (xmax
< xmin) and that matches nothing is ignored, as COCOeval's area range does.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from retraining_operator.reconcile.evaluation.boxes import Box, Detection, LabelledImage

IOU_THRESHOLD = 0.5
MAX_DETECTIONS = 100  # per image and class, COCOeval's maxDets[-1]
RECALL_THRESHOLDS = np.linspace(0.0, 1.0, 101, endpoint=True)
EPS = np.spacing(1)
# COCOeval's "all" area range; outside it an unmatched detection is ignored.
_AREA_RANGE = (0.0, 1e5**2)


@dataclass(frozen=True)
class ClassMatches:
    """One class's kept detections over all images, in COCOeval's accumulate order."""

    scores: npt.NDArray[np.float64]
    image: npt.NDArray[np.int64]  # the image (index) of each detection
    true_positive: npt.NDArray[np.bool_]  # matched to a ground-truth box
    counted: npt.NDArray[np.bool_]  # not ignored (only an odd, unmatched box is)
    ground_truth: npt.NDArray[np.int64]  # boxes of the class per image


@dataclass(frozen=True)
class Matched:
    """One model's detections on the held-out images, matched once."""

    images: int
    classes: dict[int, ClassMatches]  # every class with ground truth, by class id


def _iou(d: Detection, g: Box) -> float:
    """pycocotools' bbIou for a non-crowd box."""
    w = min(d.x + d.w, g.x + g.w) - max(d.x, g.x)
    if w <= 0:
        return 0.0
    h = min(d.y + d.h, g.y + g.h) - max(d.y, g.y)
    if h <= 0:
        return 0.0
    inter = w * h
    return inter / (d.w * d.h + g.w * g.h - inter)


def _match_image(dets: Sequence[Detection], gts: Sequence[Box]) -> list[tuple[float, bool, bool]]:
    """(score, matched, counted) of each kept detection, in score order."""
    order = sorted(range(len(dets)), key=lambda i: -dets[i].score)[:MAX_DETECTIONS]
    taken = [False] * len(gts)
    out = []
    for index in order:
        d = dets[index]
        best, match = min(IOU_THRESHOLD, 1 - 1e-10), -1
        for g_index, g in enumerate(gts):
            if taken[g_index]:
                continue
            iou = _iou(d, g)
            if iou < best:
                continue
            best, match = iou, g_index
        if match >= 0:
            taken[match] = True
        area = d.w * d.h
        counted = match >= 0 or _AREA_RANGE[0] <= area <= _AREA_RANGE[1]
        out.append((d.score, match >= 0, counted))
    return out


def match(images: Sequence[LabelledImage], predicted: Sequence[Sequence[Detection]]) -> Matched:
    """Match each image's detections (`predicted[i]` for `images[i]`) to its boxes."""
    classes = sorted({box.class_id for image in images for box in image.boxes})
    wanted = set(classes)
    rows: dict[int, list[tuple[float, int, bool, bool]]] = {c: [] for c in classes}
    ground_truth = {c: np.zeros(len(images), dtype=np.int64) for c in classes}
    for index, (image, dets) in enumerate(zip(images, predicted, strict=True)):
        gts_by_class: dict[int, list[Box]] = {}
        for box in image.boxes:
            gts_by_class.setdefault(box.class_id, []).append(box)
            ground_truth[box.class_id][index] += 1
        dets_by_class: dict[int, list[Detection]] = {}
        for det in dets:
            if det.class_id in wanted:
                dets_by_class.setdefault(det.class_id, []).append(det)
        for class_id, class_dets in dets_by_class.items():
            for score, matched, counted in _match_image(class_dets, gts_by_class.get(class_id, ())):
                rows[class_id].append((score, index, matched, counted))
    return Matched(len(images), {c: _arrays(rows[c], ground_truth[c]) for c in classes})


def _arrays(
    rows: list[tuple[float, int, bool, bool]], ground_truth: npt.NDArray[np.int64]
) -> ClassMatches:
    scores = np.array([r[0] for r in rows], dtype=np.float64)
    order = np.argsort(-scores, kind="mergesort")
    return ClassMatches(
        scores=scores[order],
        image=np.array([r[1] for r in rows], dtype=np.int64)[order],
        true_positive=np.array([r[2] for r in rows], dtype=np.bool_)[order],
        counted=np.array([r[3] for r in rows], dtype=np.bool_)[order],
        ground_truth=ground_truth,
    )


def average_precision(matches: ClassMatches) -> float:
    """The class's AP (COCOeval's precision at the 101 recall thresholds, averaged)."""
    positives = int(matches.ground_truth.sum())
    if positives == 0:
        raise ValueError("a class without ground truth has no average precision")
    tp = np.cumsum(matches.true_positive & matches.counted, dtype=np.float64)
    fp = np.cumsum(~matches.true_positive & matches.counted, dtype=np.float64)
    return _interpolated(tp, fp, float(positives))


def _interpolated(
    tp: npt.NDArray[np.float64], fp: npt.NDArray[np.float64], positives: float
) -> float:
    if tp.size == 0:
        return 0.0
    recall = tp / positives
    precision = np.maximum.accumulate((tp / (fp + tp + EPS))[::-1])[::-1]
    index = np.searchsorted(recall, RECALL_THRESHOLDS, side="left")
    found = index < tp.size
    return float(np.where(found, precision[np.minimum(index, tp.size - 1)], 0.0).mean())


@dataclass(frozen=True)
class Scores:
    """mAP and each class's AP (classes with ground truth only)."""

    mean_ap: float
    per_class: dict[int, float]
    images: int


def scores(matched: Matched) -> Scores:
    per_class = {c: average_precision(m) for c, m in matched.classes.items()}
    mean_ap = float(np.mean(list(per_class.values()))) if per_class else 0.0
    return Scores(mean_ap, per_class, matched.images)
