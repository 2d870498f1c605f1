"""Do the shadow and production give the same answers to the same requests? Pure.

With `deployment.shadow.dataCapture`, SageMaker captures each variant's requests and answers
as JSON Lines (`captureData.endpointInput` / `endpointOutput`). Two records are the same
request when their inputs are the same bytes. For each such pair the built-in detector's
answers (`{"prediction": [[class_id, score, xmin, ymin, xmax, ymax], ...]}`) are compared as
labels are consolidated: boxes above `scoreThreshold`, matched one to one within a class at
IoU >= 0.5, best score first. A request's agreement is 2 x matched / (boxes of both) (1 when
neither found anything); the test's agreement is the mean over the paired requests.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

MATCH_IOU = 0.5

Box = tuple[int, float, float, float, float]  # class id, xmin, ymin, xmax, ymax


@dataclass(frozen=True)
class Agreement:
    pairs: int  # requests both variants answered (and were captured)
    mean: float | None  # None: no pair


def captured(lines: Iterable[bytes | str]) -> dict[str, Any]:
    """Input digest -> the answer, from a variant's capture files' lines (unreadable lines
    and answers are skipped: a capture is evidence, not an order)."""
    out: dict[str, Any] = {}
    for line in lines:
        try:
            record = json.loads(line)
            data = record["captureData"]
            digest = hashlib.sha256(str(data["endpointInput"]["data"]).encode()).hexdigest()
            out[digest] = _answer(data["endpointOutput"])
        except (ValueError, KeyError, TypeError, binascii.Error):
            continue
    return out


def _answer(output: Mapping[str, Any]) -> Any:
    text = str(output["data"])
    if str(output.get("encoding", "")).upper() == "BASE64":
        text = base64.b64decode(text, validate=True).decode()
    return json.loads(text)


def agreement(
    production: Mapping[str, Any], shadow: Mapping[str, Any], *, score_threshold: float
) -> Agreement:
    """The mean agreement over the requests captured for both variants."""
    shared = sorted(set(production) & set(shadow))
    if not shared:
        return Agreement(0, None)
    scores = [
        _one(_boxes(production[key], score_threshold), _boxes(shadow[key], score_threshold))
        for key in shared
    ]
    return Agreement(len(shared), sum(scores) / len(scores))


def _boxes(answer: Any, threshold: float) -> list[tuple[float, Box]]:
    rows = answer.get("prediction") if isinstance(answer, Mapping) else None
    boxes = []
    for row in rows if isinstance(rows, list) else []:
        try:
            class_id, score, *edges = (float(v) for v in row)
        except (TypeError, ValueError):
            continue
        if len(edges) == 4 and score >= threshold:
            xmin, ymin, xmax, ymax = edges
            boxes.append((score, (int(class_id), xmin, ymin, xmax, ymax)))
    return sorted(boxes, key=lambda item: -item[0])


def _one(a: Sequence[tuple[float, Box]], b: Sequence[tuple[float, Box]]) -> float:
    if not a and not b:
        return 1.0
    unmatched = [box for _, box in b]
    matched = 0
    for _, box in a:
        best, best_iou = None, MATCH_IOU
        for other in unmatched:
            if other[0] == box[0] and (iou := _iou(box, other)) >= best_iou:
                best, best_iou = other, iou
        if best is not None:
            unmatched.remove(best)
            matched += 1
    return 2.0 * matched / (len(a) + len(b))


def _iou(a: Box, b: Box) -> float:
    width = min(a[3], b[3]) - max(a[1], b[1])
    height = min(a[4], b[4]) - max(a[2], b[2])
    if width <= 0 or height <= 0:
        return 0.0
    inter = width * height
    union = (a[3] - a[1]) * (a[4] - a[2]) + (b[3] - b[1]) * (b[4] - b[2]) - inter
    return inter / union if union > 0 else 0.0
