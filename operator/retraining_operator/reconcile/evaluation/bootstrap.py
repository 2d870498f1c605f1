"""How sure the gate is: a paired bootstrap over images of mAP(candidate) - mAP(serving).

Both models were evaluated on the same images. Each bootstrap sample draws as many images
as there are, with replacement, and computes both models' mAP on that same draw (an image
drawn k times counts k times: its detections and boxes are weighed by k), so what the
images have in common (an easy image is easy for both) cancels in the difference. The
interval is the percentile interval of the sampled differences at `confidence`; with 1,000
samples and 95 % it covers the true difference about 95 times in 100
(tests/unit/test_evaluation_bootstrap.py checks it by simulation).

Cost: one pass over each class's detections per sample, vectorized over a block of samples
(no matching again: `average_precision.match` did it once). The draws come from a seeded
generator (the run id), so a run's interval is the same every time it is computed.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from retraining_operator.reconcile.evaluation.average_precision import (
    EPS,
    RECALL_THRESHOLDS,
    ClassMatches,
    Matched,
    scores,
)

DEFAULT_SAMPLES = 1000
DEFAULT_CONFIDENCE = 0.95
# Samples weighed at once: a block of B samples costs B x detections floats per class.
BLOCK = 64


@dataclass(frozen=True)
class Difference:
    """mAP(candidate) - mAP(serving) on the same images, and its interval."""

    candidate: float
    serving: float
    low: float
    high: float
    confidence: float
    samples: int
    images: int

    @property
    def estimate(self) -> float:
        return self.candidate - self.serving


def seed_of(text: str) -> int:
    """A stable 64-bit seed from a run id (Python's hash() is salted per process)."""
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")


def paired_difference(
    candidate: Matched,
    serving: Matched,
    *,
    samples: int = DEFAULT_SAMPLES,
    confidence: float = DEFAULT_CONFIDENCE,
    seed: int = 0,
) -> Difference:
    """The paired bootstrap of the mAP difference (see the module docstring)."""
    if candidate.images != serving.images or set(candidate.classes) != set(serving.classes):
        raise ValueError("both models must be matched on the same images")
    if candidate.images == 0 or not candidate.classes:
        raise ValueError("no held-out image with ground truth to compare on")
    rng = np.random.default_rng(seed)
    differences = np.empty(samples, dtype=np.float64)
    images = candidate.images
    for start in range(0, samples, BLOCK):
        size = min(BLOCK, samples - start)
        # Each row: how often each image was drawn (n draws with replacement).
        drawn = rng.integers(0, images, size=(size, images)) + images * np.arange(size)[:, None]
        counts = np.bincount(drawn.ravel(), minlength=size * images).reshape(size, images)
        weights = counts.astype(np.float32)
        block = _mean_ap(candidate, weights) - _mean_ap(serving, weights)
        differences[start : start + size] = block
    alpha = (1.0 - confidence) / 2.0
    low, high = np.quantile(differences, [alpha, 1.0 - alpha])
    return Difference(
        candidate=scores(candidate).mean_ap,
        serving=scores(serving).mean_ap,
        low=float(low),
        high=float(high),
        confidence=confidence,
        samples=samples,
        images=candidate.images,
    )


def _mean_ap(matched: Matched, weights: npt.NDArray[np.float32]) -> npt.NDArray[np.float64]:
    """mAP of each row of image weights (B x images): a class whose boxes were all left
    out of a draw does not count in that draw's mean, as a class without ground truth."""
    total = np.zeros(weights.shape[0])
    count = np.zeros(weights.shape[0])
    for matches in matched.classes.values():
        ap, present = _weighted_ap(matches, weights)
        total += np.where(present, ap, 0.0)
        count += present
    return np.divide(total, count, out=np.zeros_like(total), where=count > 0)


def _hits_needed(positives: npt.NDArray[np.float32]) -> npt.NDArray[np.float64]:
    """For each row and recall threshold r, the fewest true positives k with k / positives
    >= r, in the float arithmetic COCOeval compares recall in (rows without positives: 0)."""
    total = np.maximum(positives.astype(np.float64), 1.0)[:, None]
    k = np.ceil(RECALL_THRESHOLDS[None, :] * total)
    k = np.where((k - 1 >= 0) & ((k - 1) / total >= RECALL_THRESHOLDS), k - 1, k)
    return np.where(k / total < RECALL_THRESHOLDS, k + 1, k)


def _weighted_ap(
    matches: ClassMatches, weights: npt.NDArray[np.float32]
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.bool_]]:
    """Each row's AP of the class, from its true positives' columns only.

    Precision peaks only at true positives (a false positive lowers it), so the monotone
    envelope and the recall crossings are read at the true positives; the false positives
    enter through how many (by weight) come before each one. Weights are whole numbers, so
    the counts are exact in float32 (below 2**24), and "recall >= r" is "true positives >=
    ceil(r x positives)"."""
    positives = weights @ matches.ground_truth.astype(np.float32)
    present = positives > 0
    rows = weights.shape[0]
    counted = matches.counted
    hits = np.flatnonzero(matches.true_positive & counted)
    if hits.size == 0:
        return np.zeros(rows), present
    misses = np.flatnonzero(~matches.true_positive & counted)
    tp = np.cumsum(weights[:, matches.image[hits]], axis=1)
    before = np.searchsorted(misses, hits)  # false positives ranked above each hit
    fp = np.zeros((rows, hits.size), dtype=np.float32)
    if misses.size:
        fp_cum = np.cumsum(weights[:, matches.image[misses]], axis=1)
        fp = np.where(before > 0, fp_cum[:, np.maximum(before - 1, 0)], np.float32(0))
    precision = tp / (tp + fp + np.float32(EPS))
    envelope = np.maximum.accumulate(precision[:, ::-1], axis=1)[:, ::-1]
    # The first hit reaching each recall threshold, for every row at once: rows laid end to
    # end, each lifted above the one before, make one sorted array.
    needed = _hits_needed(positives)
    lift = (np.arange(rows) * (float(positives.max()) + 1.0))[:, None]
    flat = (tp + lift.astype(np.float32)).ravel()
    index = np.searchsorted(flat, (needed + lift).astype(np.float32).ravel(), side="left")
    index = index.reshape(rows, -1) - (np.arange(rows)[:, None] * hits.size)
    found = index < hits.size
    picked = np.take_along_axis(envelope, np.minimum(index, hits.size - 1), axis=1)
    return np.where(found, picked, 0.0).mean(axis=1), present
