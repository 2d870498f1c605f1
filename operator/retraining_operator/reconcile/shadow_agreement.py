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

from retraining_operator.manifest.consolidate import Box, iou

MATCH_IOU = 0.5


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
        except (ValueError, KeyError, TypeError, RecursionError, binascii.Error):
            continue  # RecursionError: a line nested too deep for the JSON parser
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
            number, score, *edges = (float(v) for v in row)
            class_id = int(number)  # NaN and infinity are no class
        except (TypeError, ValueError, OverflowError):
            continue
        if len(edges) == 4 and score >= threshold:
            xmin, ymin, xmax, ymax = edges
            # As a worker's box, so that boxes are matched exactly as consolidation does.
            box = Box(str(class_id), xmin, ymin, xmax - xmin, ymax - ymin)
            boxes.append((score, box))
    return sorted(boxes, key=lambda item: -item[0])


def _one(a: Sequence[tuple[float, Box]], b: Sequence[tuple[float, Box]]) -> float:
    if not a and not b:
        return 1.0
    unmatched = [box for _, box in b]
    matched = 0
    for _, box in a:
        best, best_iou = None, MATCH_IOU
        for other in unmatched:
            if other.label == box.label and (overlap := iou(box, other)) >= best_iou:
                best, best_iou = other, overlap
        if best is not None:
            unmatched.remove(best)
            matched += 1
    return 2.0 * matched / (len(a) + len(b))
