"""The paired bootstrap: its point estimate is the mAP, and its 95 % interval covers the true
difference of two models 93-97 times in 100 (by simulation)."""

from __future__ import annotations

import numpy as np
import pytest

from retraining_operator.reconcile.evaluation.average_precision import (
    ClassMatches,
    Matched,
    match,
    scores,
)
from retraining_operator.reconcile.evaluation.bootstrap import paired_difference, seed_of
from retraining_operator.reconcile.evaluation.boxes import Box, Detection, LabelledImage

CLASSES = 3


def population(rng: np.random.Generator, size: int) -> list[LabelledImage]:
    images = []
    for index in range(size):
        boxes = tuple(
            Box(int(rng.integers(CLASSES)), float(rng.uniform(0, 60)), float(rng.uniform(0, 60)),
                float(rng.uniform(10, 40)), float(rng.uniform(10, 40)))
            for _ in range(int(rng.integers(1, 4)))
        )  # fmt: skip
        images.append(LabelledImage(f"s3://b/{index}.jpg", 100.0, 100.0, boxes))
    return images


def model(
    rng: np.random.Generator, images: list[LabelledImage], skill: float
) -> list[list[Detection]]:
    """Finds a box with probability `skill` (scored high), else misplaces it (scored lower),
    and adds a false positive now and then."""
    predicted = []
    for image in images:
        dets = []
        for box in image.boxes:
            found = rng.random() < skill
            shift = rng.uniform(-3, 3) if found else rng.uniform(15, 30)
            score = rng.uniform(0.5, 1.0) if found else rng.uniform(0.0, 0.7)
            dets.append(Detection(box.class_id, float(score), box.x + shift, box.y, box.w, box.h))
        if rng.random() < 0.3:
            cls, score = int(rng.integers(CLASSES)), float(rng.uniform(0, 0.8))
            x, y = float(rng.uniform(0, 60)), float(rng.uniform(0, 60))
            dets.append(Detection(cls, score, x, y, 20.0, 20.0))
        predicted.append(dets)
    return predicted


def subset(matched: Matched, pick: np.ndarray) -> Matched:
    """`matched` restricted to the images `pick` (ascending): matching is per image, so this
    is what matching those images alone gives, without matching again."""
    new_index = np.full(matched.images, -1)
    new_index[pick] = np.arange(pick.size)
    classes = {}
    for class_id, m in matched.classes.items():
        ground_truth = m.ground_truth[pick]
        if ground_truth.sum() == 0:
            continue
        keep = new_index[m.image] >= 0
        classes[class_id] = ClassMatches(
            m.scores[keep],
            new_index[m.image[keep]],
            m.true_positive[keep],
            m.counted[keep],
            ground_truth,
        )
    return Matched(int(pick.size), classes)


def test_point_estimates_are_the_models_map_and_identical_models_differ_by_nothing() -> None:
    rng = np.random.default_rng(1)
    images = population(rng, 200)
    a, b = model(rng, images, 0.8), model(rng, images, 0.7)
    ma, mb = match(images, a), match(images, b)
    diff = paired_difference(ma, mb, samples=200, seed=seed_of("r1"))
    assert diff.candidate == pytest.approx(scores(ma).mean_ap, abs=1e-12)
    assert diff.serving == pytest.approx(scores(mb).mean_ap, abs=1e-12)
    assert diff.low < diff.estimate < diff.high
    same = paired_difference(ma, ma, samples=200, seed=1)
    assert (same.low, same.estimate, same.high) == (0.0, 0.0, 0.0)
    # Seeded by the run id: the same interval every time.
    assert paired_difference(ma, mb, samples=200, seed=seed_of("r1")) == diff


def test_a_95_percent_interval_covers_the_true_difference_93_to_97_times_in_100() -> None:
    rng = np.random.default_rng(2026)
    images = population(rng, 20_000)
    candidate, serving = model(rng, images, 0.78), model(rng, images, 0.72)
    whole_candidate, whole_serving = match(images, candidate), match(images, serving)
    truth = scores(whole_candidate).mean_ap - scores(whole_serving).mean_ap
    covered = 0
    cases = 1000
    for case in range(cases):
        pick = np.sort(rng.choice(len(images), size=150, replace=False))
        a, b = subset(whole_candidate, pick), subset(whole_serving, pick)
        if case < 3:  # the shortcut is what matching those images gives
            assert scores(a) == scores(
                match([images[i] for i in pick], [candidate[i] for i in pick])
            )
        if set(a.classes) != set(b.classes):
            continue
        diff = paired_difference(a, b, seed=case)
        covered += diff.low <= truth <= diff.high
    print(f"coverage {covered / cases:.3f} (true difference {truth:.4f})")
    assert 0.93 * cases <= covered <= 0.97 * cases, covered


def test_a_draw_weighs_an_image_as_if_it_were_there_that_many_times() -> None:
    from retraining_operator.reconcile.evaluation.bootstrap import _mean_ap

    rng = np.random.default_rng(7)
    for _ in range(30):
        images = population(rng, 12)
        predicted = model(rng, images, 0.6)
        drawn = rng.integers(0, 3, size=12)  # each image 0, 1 or 2 times
        if not any(drawn[i] and images[i].boxes for i in range(12)):
            continue
        order = [i for i in range(12) for _ in range(drawn[i])]
        expanded = scores(match([images[i] for i in order], [predicted[i] for i in order]))
        weighted = _mean_ap(match(images, predicted), drawn[None, :].astype(np.float32))[0]
        assert weighted == pytest.approx(expanded.mean_ap, abs=1e-6)
