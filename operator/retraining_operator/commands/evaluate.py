"""`retraining-operator evaluate`: a model's mAP on an augmented manifest, offline.

The same function the gate uses (`reconcile/evaluation/held_out.py`): COCO-style mAP at
IoU 0.5 and each class's AP, over every image of the ground truth. Predictions are JSON
Lines `{"source-ref": "s3://...", "prediction": [[class_id, score, xmin, ymin, xmax,
ymax], ...]}` (the built-in object-detection algorithm's answer, coordinates normalized to
the image). Exit codes (EXIT_CODES, also in --help), as `manifest`:

    0  every line was read and every image has a prediction
    2  some lines were refused or some images have no prediction (named on stderr);
       the scores count them as images where nothing was found
    1  nothing could be done: bad arguments, an unreadable file, or no valid image
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, NoReturn

from retraining_operator.commands import Subparsers

ALL_GOOD = 0
NOTHING_DONE = 1
SOME_REFUSED = 2
EXIT_CODES = """exit codes:
  0  every line was read and every image has a prediction
  2  some lines were refused or some images have no prediction (listed on stderr)
  1  nothing could be done: bad arguments, an unreadable file, or no valid image"""
MAX_LINE_BYTES = 16 * 1024 * 1024


class _Refused(Exception):
    pass


def register(sub: Subparsers) -> None:
    parser = sub.add_parser(
        "evaluate",
        help="a model's mAP (IoU 0.5) and per-class AP on an augmented manifest",
        description="Score predictions against an augmented manifest exactly as the gate "
        "does: COCO-style mean average precision at IoU 0.5 (101-point interpolation, at "
        "most 100 detections per image and class, averaged over the classes with ground "
        "truth) and each class's AP. An image without a prediction counts as one where "
        "nothing was found.",
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )

    def usage_error(message: str) -> NoReturn:
        parser.print_usage(sys.stderr)
        parser.exit(NOTHING_DONE, f"{parser.prog}: error: {message}\n")

    parser.error = usage_error  # type: ignore[method-assign]
    parser.add_argument("--ground-truth", required=True, help="augmented manifest (JSON Lines)")
    parser.add_argument(
        "--predictions", required=True, help='JSON Lines: {"source-ref": ..., "prediction": [...]}'
    )
    parser.add_argument(
        "--attribute",
        help="the manifest's label attribute (default: the one key beside source-ref and "
        "its -metadata)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    try:
        return _evaluate(args)
    except _Refused as error:
        print(f"retraining-operator evaluate: {error}", file=sys.stderr)
        return NOTHING_DONE


def _evaluate(args: argparse.Namespace) -> int:
    from retraining_operator.reconcile.evaluation.average_precision import scores
    from retraining_operator.reconcile.evaluation.held_out import (
        answered,
        held_out,
        label_attribute,
    )

    truth = list(_lines(Path(args.ground_truth)))
    attribute = args.attribute or next(
        (a for _, line in truth if (a := label_attribute(line)) is not None), None
    )
    if attribute is None:
        raise _Refused(f"no label attribute found in {args.ground_truth}; pass --attribute")
    images = held_out(truth, attribute)
    if not images.images:
        raise _Refused(f"no valid image in {args.ground_truth}")
    answers, refused = _answers(Path(args.predictions))
    result = answered(images.images, answers)
    problems = [*images.problems, *refused, *result.problems]
    for problem in problems:
        print(f"retraining-operator evaluate: {problem}", file=sys.stderr)
    found = scores(result.matched)
    boxes = {c: int(m.ground_truth.sum()) for c, m in result.matched.classes.items()}
    if args.json:
        print(json.dumps({
            "mAP": found.mean_ap,
            "perClass": {str(c): ap for c, ap in sorted(found.per_class.items())},
            "images": found.images,
            "groundTruthBoxes": {str(c): n for c, n in sorted(boxes.items())},
            "problems": len(problems),
        }))  # fmt: skip
    else:
        print(f"mAP@0.5 {found.mean_ap:.4f} over {found.images} images, {len(boxes)} classes")
        for class_id, ap in sorted(found.per_class.items()):
            print(f"  class {class_id}: AP {ap:.4f} ({boxes[class_id]} boxes)")
    return SOME_REFUSED if problems else ALL_GOOD


def _lines(path: Path) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """`(path:line, object)` of each non-empty line; a file that cannot be read refuses."""
    try:
        with path.open("rb") as handle:
            for number, raw in enumerate(handle, start=1):
                if len(raw) > MAX_LINE_BYTES:
                    raise _Refused(f"{path}:{number}: a line over {MAX_LINE_BYTES} bytes")
                if not raw.strip():
                    continue
                try:
                    parsed = json.loads(raw)
                except ValueError:
                    parsed = None
                yield f"{path}:{number}", parsed if isinstance(parsed, dict) else {}
    except OSError as error:
        raise _Refused(f"cannot read {path}: {error.strerror or error}") from None


def _answers(path: Path) -> tuple[dict[str, Mapping[str, Any]], list[str]]:
    answers: dict[str, Mapping[str, Any]] = {}
    refused = []
    for where, line in _lines(path):
        source = line.get("source-ref")
        if not isinstance(source, str) or "prediction" not in line:
            refused.append(f"{where}: not a prediction line (source-ref and prediction)")
        elif source in answers:
            refused.append(f"{where}: {source} again (the first prediction counts)")
        else:
            answers[source] = line
    return answers, refused
