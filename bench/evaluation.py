"""The honest gate's CPU cost (not a test): 10,000 held-out images, both models.

What the operator computes once both transform jobs are done, on synthetic predictions
(3 boxes per image at most, ~20 classes, a false positive now and then): reading each
model's answers into boxes, matching them, mAP and per-class AP for both, and the paired
bootstrap (1,000 resamples) of the difference. The baseline, in the same run on the same
data: pycocotools' COCOeval computing one model's mAP at IoU 0.5 (its C matching, no
bootstrap). The target (issue 30): <= 2 s of operator CPU.

    .venv/bin/python bench/evaluation.py --images 10000      # prints the figures as JSON
"""

# ruff: noqa: E402 - the path fix below must run before the standard-library imports
from __future__ import annotations

import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [entry for entry in sys.path if os.path.abspath(entry or os.curdir) != _HERE]

import argparse
import contextlib
import io
import json
import random
import time
from typing import Any

CLASSES = 20


def held_out(rng: random.Random, images: int) -> list[dict[str, Any]]:
    lines = []
    for index in range(images):
        boxes = [
            {
                "class_id": rng.randrange(CLASSES),
                "left": rng.uniform(0, 400),
                "top": rng.uniform(0, 300),
                "width": rng.uniform(20, 200),
                "height": rng.uniform(20, 150),
            }
            for _ in range(rng.randint(1, 3))
        ]
        lines.append({
            "source-ref": f"s3://bench/images/{index:06d}.jpg",
            "od": {"annotations": boxes, "image_size": [{"width": 640, "height": 480, "depth": 3}]},
        })  # fmt: skip
    return lines


def answers(rng: random.Random, lines: list[dict[str, Any]], skill: float) -> dict[str, Any]:
    """The built-in algorithm's answer per image (normalized [class, score, x0, y0, x1, y1])."""
    out = {}
    for line in lines:
        rows = []
        for box in line["od"]["annotations"]:
            found = rng.random() < skill
            shift = rng.uniform(-4, 4) if found else rng.uniform(60, 120)
            score = rng.uniform(0.5, 1.0) if found else rng.uniform(0.0, 0.6)
            x0, y0 = box["left"] + shift, box["top"]
            rows.append([box["class_id"], score, x0 / 640, y0 / 480,
                         (x0 + box["width"]) / 640, (y0 + box["height"]) / 480])  # fmt: skip
        if rng.random() < 0.3:
            rows.append([rng.randrange(CLASSES), rng.uniform(0, 0.7), 0.1, 0.1, 0.3, 0.3])
        out[line["source-ref"]] = {"prediction": rows}
    return out


def operator_cost(
    lines: list[dict[str, Any]], a: dict[str, Any], b: dict[str, Any]
) -> dict[str, Any]:
    from retraining_operator.reconcile.evaluation.average_precision import scores
    from retraining_operator.reconcile.evaluation.bootstrap import paired_difference, seed_of
    from retraining_operator.reconcile.evaluation.held_out import answered, held_out

    started = time.process_time()
    images = held_out([(str(i), line) for i, line in enumerate(lines)], "od").images
    candidate, serving = answered(images, a).matched, answered(images, b).matched
    matched = time.process_time()
    both = scores(candidate), scores(serving)
    difference = paired_difference(candidate, serving, seed=seed_of("r20261207-000000"))
    done = time.process_time()
    return {
        "cpu_s": round(done - started, 3),
        "read_and_match_s": round(matched - started, 3),
        "scores_and_bootstrap_s": round(done - matched, 3),
        "candidate_map": round(both[0].mean_ap, 4),
        "serving_map": round(both[1].mean_ap, 4),
        "interval": [round(difference.low, 4), round(difference.high, 4)],
    }


def coco_cost(lines: list[dict[str, Any]], a: dict[str, Any]) -> dict[str, Any]:
    import numpy as np
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    started = time.process_time()
    gt = COCO()
    annotations, results = [], []
    for index, line in enumerate(lines, start=1):
        for box in line["od"]["annotations"]:
            bbox = [box["left"], box["top"], box["width"], box["height"]]
            annotations.append({"id": len(annotations) + 1, "image_id": index,
                                "category_id": box["class_id"], "bbox": bbox,
                                "area": bbox[2] * bbox[3], "iscrowd": 0})  # fmt: skip
        for c, score, x0, y0, x1, y1 in a[line["source-ref"]]["prediction"]:
            bbox = [x0 * 640, y0 * 480, (x1 - x0) * 640, (y1 - y0) * 480]
            results.append({"image_id": index, "category_id": c, "score": score, "bbox": bbox})
    gt.dataset = {
        "images": [{"id": i} for i in range(1, len(lines) + 1)],
        "annotations": annotations,
        "categories": [{"id": c} for c in range(CLASSES)],
    }
    with contextlib.redirect_stdout(io.StringIO()):
        gt.createIndex()
        evaluation = COCOeval(gt, gt.loadRes(results), "bbox")
        evaluation.params.iouThrs = np.array([0.5])
        evaluation.evaluate()
        evaluation.accumulate()
    precision = evaluation.eval["precision"][0, :, :, 0, -1]
    return {
        "cpu_s": round(time.process_time() - started, 3),
        "map": round(float(precision[precision > -1].mean()), 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=10_000)
    args = parser.parse_args()
    rng = random.Random(30)
    lines = held_out(rng, args.images)
    candidate, serving = answers(rng, lines, 0.8), answers(rng, lines, 0.7)
    ours = operator_cost(lines, candidate, serving)
    reference = coco_cost(lines, candidate)
    print(json.dumps({
        "images": args.images,
        "operator_both_models_with_bootstrap": ours,
        "pycocotools_one_model_no_bootstrap": reference,
        "ratio_operator_to_pycocotools": round(ours["cpu_s"] / reference["cpu_s"], 2),
        "same_map": abs(ours["candidate_map"] - reference["map"]) < 1e-4,
    }, indent=2))  # fmt: skip


if __name__ == "__main__":
    main()
