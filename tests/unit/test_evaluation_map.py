"""The operator's mAP is pycocotools' COCOeval at IoU 0.5, to 1e-9, on random cases.

Random held-out sets: images without boxes, classes without detections, detections of
classes without ground truth, tied scores, boxes that overlap several ground-truth boxes,
degenerate (inverted) predictions. COCOeval is the reference (dev dependency only).
"""

from __future__ import annotations

import contextlib
import io
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from retraining_operator.reconcile.evaluation.average_precision import match, scores
from retraining_operator.reconcile.evaluation.boxes import (
    Box,
    BoxesError,
    Detection,
    LabelledImage,
    detections,
    labelled_image,
)

pycocotools = pytest.importorskip("pycocotools.cocoeval", reason="dev dependency: make setup")
from pycocotools.coco import COCO  # noqa: E402
from pycocotools.cocoeval import COCOeval  # noqa: E402

CLASSES = 4
SIZE = 100.0


def reference(images: list[LabelledImage], predicted: list[list[Detection]]) -> dict[str, Any]:
    gt = COCO()
    annotations = []
    for index, image in enumerate(images):
        for box in image.boxes:
            annotations.append({
                "id": len(annotations) + 1, "image_id": index + 1, "category_id": box.class_id,
                "bbox": [box.x, box.y, box.w, box.h], "area": box.w * box.h, "iscrowd": 0,
            })  # fmt: skip
    gt.dataset = {
        "images": [
            {"id": i + 1, "width": im.width, "height": im.height} for i, im in enumerate(images)
        ],
        "annotations": annotations,
        "categories": [{"id": c} for c in range(CLASSES)],
    }
    with contextlib.redirect_stdout(io.StringIO()):
        gt.createIndex()
        results = [
            {"image_id": index + 1, "category_id": d.class_id, "bbox": [d.x, d.y, d.w, d.h],
             "score": d.score}
            for index, dets in enumerate(predicted) for d in dets
        ]  # fmt: skip
        dt = gt.loadRes(results) if results else COCO()
        if not results:
            dt.dataset = {"images": gt.dataset["images"], "annotations": [], "categories": []}
            dt.createIndex()
        evaluation = COCOeval(gt, dt, "bbox")
        evaluation.params.iouThrs = np.array([0.5])
        evaluation.evaluate()
        evaluation.accumulate()
    precision = evaluation.eval["precision"][0, :, :, 0, -1]  # recall x class, area all, 100
    per_class = {c: float(precision[:, c].mean()) for c in range(CLASSES) if precision[0, c] > -1}
    valid = precision[precision > -1]
    return {"mAP": float(valid.mean()) if valid.size else None, "per_class": per_class}


coordinate = st.floats(0, 90, allow_nan=False).map(lambda v: round(v, 1))
extent = st.floats(1, 40, allow_nan=False).map(lambda v: round(v, 1))


@st.composite
def held_out(draw: st.DrawFn) -> tuple[list[LabelledImage], list[list[Detection]]]:
    images, predicted = [], []
    for index in range(draw(st.integers(1, 12))):
        boxes = tuple(
            Box(draw(st.integers(0, CLASSES - 2)), draw(coordinate), draw(coordinate),
                draw(extent), draw(extent))
            for _ in range(draw(st.integers(0, 4)))
        )  # fmt: skip
        images.append(LabelledImage(f"s3://b/{index}.jpg", SIZE, SIZE, boxes))
        dets = []
        for _ in range(draw(st.integers(0, 7))):
            score = draw(st.sampled_from([0.1, 0.5, 0.5, 0.9, draw(st.floats(0, 1))]))
            if boxes and draw(st.booleans()):  # near a ground-truth box: matches, or almost
                box = draw(st.sampled_from(boxes))
                shift = draw(st.floats(-8, 8, allow_nan=False))
                cls = box.class_id if draw(st.integers(0, 4)) else CLASSES - 1
                dets.append(Detection(cls, score, box.x + shift, box.y, box.w, box.h))
            else:
                w = draw(st.floats(-5, 40, allow_nan=False))  # negative: an inverted box
                cls = draw(st.integers(0, CLASSES - 1))
                x, y, h = draw(coordinate), draw(coordinate), draw(extent)
                dets.append(Detection(cls, score, x, y, w, h))
        predicted.append(dets)
    return images, predicted


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(held_out())
def test_map_and_per_class_ap_are_cocoevals(
    case: tuple[list[LabelledImage], list[list[Detection]]],
) -> None:
    images, predicted = case
    expected = reference(images, predicted)
    matched = match(images, predicted)
    if expected["mAP"] is None:
        assert matched.classes == {}
        return
    got = scores(matched)
    assert got.mean_ap == pytest.approx(expected["mAP"], abs=1e-9)
    assert set(got.per_class) == set(expected["per_class"])
    for class_id, ap in expected["per_class"].items():
        assert got.per_class[class_id] == pytest.approx(ap, abs=1e-9)


def test_a_perfect_model_scores_one_and_a_blind_one_zero() -> None:
    images = [
        LabelledImage("s3://b/a.jpg", 100, 100, (Box(0, 10, 10, 20, 20), Box(1, 50, 50, 30, 30)))
    ]
    perfect = [[Detection(0, 0.9, 10, 10, 20, 20), Detection(1, 0.8, 50, 50, 30, 30)]]
    assert scores(match(images, perfect)).mean_ap == pytest.approx(1.0)
    assert scores(match(images, [[]])).mean_ap == 0.0


def test_lines_are_read_as_the_manifest_and_the_algorithm_write_them() -> None:
    line = {
        "source-ref": "s3://b/a.jpg",
        "od": {"annotations": [{"class_id": 1, "left": 10, "top": 20, "width": 30, "height": 40}],
               "image_size": [{"width": 200, "height": 100, "depth": 3}]},
    }  # fmt: skip
    image = labelled_image(line, "od")
    assert image.boxes == (Box(1, 10, 20, 30, 40),)
    (det,) = detections({"prediction": [[1, 0.7, 0.05, 0.2, 0.2, 0.6]]}, image)
    assert (det.class_id, det.score) == (1, 0.7)
    assert (det.x, det.y, det.w, det.h) == pytest.approx((10, 20, 30, 40))
    with pytest.raises(BoxesError, match=r"prediction\[0\]\[1\] is not a number"):
        detections({"prediction": [[1, "high", 0, 0, 1, 1]]}, image)
    with pytest.raises(BoxesError, match=r"od.annotations\[0\].class_id"):
        labelled_image({**line, "od": {**line["od"], "annotations": [{"class_id": -1}]}}, "od")
