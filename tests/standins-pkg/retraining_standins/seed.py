"""Realistic A2I human-loop output, as the object-detection task template writes it.

The shape is A2I's `output.json` for a bounding-box task (what the workshop reads):

    {"flowDefinitionArn": ..., "humanLoopName": ...,
     "humanAnswers": [{"acceptanceTime", "submissionTime", "timeSpentInSeconds", "workerId",
                       "workerMetadata": {"identityData": {...}},
                       "answerContent": {"annotatedResult": {
                           "boundingBoxes": [{"height", "label", "left", "top", "width"}],
                           "inputImageProperties": {"height", "width"}}}}],
     "inputContent": {"initialValue": ..., "taskObject": "s3://.../image.jpg"}}

and it lands at `<S3OutputPath>/<flow definition name>/YYYY/MM/DD/hh/mm/ss/<loop name>/output.json`
(the loop's creation time, UTC).
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

VOC_CLASSES: tuple[str, ...] = (
    "aeroplane",
    "bicycle",
    "bird",
    "boat",
    "bottle",
    "bus",
    "car",
    "cat",
    "chair",
    "cow",
    "diningtable",
    "dog",
    "horse",
    "motorbike",
    "person",
    "pottedplant",
    "sheep",
    "sofa",
    "train",
    "tvmonitor",
)


def a2i_output_uri(
    s3_output_path: str, flow_definition_name: str, loop_name: str, created: datetime
) -> str:
    """Where A2I writes a loop's output.json."""
    stamp = created.astimezone(UTC).strftime("%Y/%m/%d/%H/%M/%S")
    return f"{s3_output_path.rstrip('/')}/{flow_definition_name}/{stamp}/{loop_name}/output.json"


def a2i_timestamp(when: datetime) -> str:
    """A2I's timestamp format in output.json, e.g. `2020-09-10T17:29:44.012Z`."""
    utc = when.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def make_rng(seed: int | str | random.Random | None) -> random.Random:
    if isinstance(seed, random.Random):
        return seed
    return random.Random(seed)


def random_loop_name(rng: random.Random) -> str:
    """A uuid4-looking human loop name (what the workshop uses), reproducible from `rng`."""
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def random_bounding_boxes(
    rng: random.Random,
    classes: Sequence[str],
    width: int,
    height: int,
    count: int,
) -> list[dict[str, Any]]:
    """Valid boxes: integer pixels, positive size, inside the image."""
    boxes = []
    for _ in range(count):
        left = rng.randint(0, width - 2)
        top = rng.randint(0, height - 2)
        box_width = rng.randint(1, width - left)
        box_height = rng.randint(1, height - top)
        boxes.append(
            {
                "height": box_height,
                "label": rng.choice(list(classes)),
                "left": left,
                "top": top,
                "width": box_width,
            }
        )
    return boxes


def jittered_answer(
    rng: random.Random,
    objects: Sequence[dict[str, Any]],
    classes: Sequence[str],
    width: int,
    height: int,
    disagreement: float,
) -> list[dict[str, Any]]:
    """One worker's boxes for `objects` (the true boxes): each a few pixels off; with
    probability `disagreement` (each) an object is missed or relabelled, or a box of the
    worker's own is added."""
    drawn = []
    for box in objects:
        if rng.random() < disagreement:
            continue  # missed it
        label = box["label"]
        if rng.random() < disagreement:
            label = rng.choice(list(classes))
        spread_x = max(2, round(box["width"] * 0.015))
        spread_y = max(2, round(box["height"] * 0.015))
        left = min(max(0, box["left"] + rng.randint(-spread_x, spread_x)), width - 1)
        top = min(max(0, box["top"] + rng.randint(-spread_y, spread_y)), height - 1)
        box_width = min(max(1, box["width"] + rng.randint(-spread_x, spread_x)), width - left)
        box_height = min(max(1, box["height"] + rng.randint(-spread_y, spread_y)), height - top)
        drawn.append(
            {
                "height": box_height,
                "label": label,
                "left": left,
                "top": top,
                "width": box_width,
            }
        )
    if rng.random() < disagreement:
        drawn.extend(random_bounding_boxes(rng, classes, width, height, 1))
    return drawn


def random_a2i_output(
    *,
    flow_definition_arn: str,
    human_loop_name: str,
    task_object: str,
    classes: Sequence[str] = VOC_CLASSES,
    rng: int | str | random.Random | None = None,
    submitted_at: datetime | None = None,
    workers: int = 1,
    boxes: tuple[int, int] = (1, 5),
    image_size: tuple[int, int] | None = None,
    disagreement: float | None = None,
) -> dict[str, Any]:
    """A valid A2I object-detection output for `classes`, with `workers` human answers.

    Every answer labels the same image (same `inputImageProperties`); box counts are drawn
    from `boxes` (inclusive). Deterministic for a given `rng` seed.

    `disagreement` None: each worker draws boxes of their own (unrelated answers).
    A number p: the workers label the same objects, as real reviewers do, each box a few
    pixels off the others (jitter of up to 1.5 % of the box size, at least 2 px); with
    probability p a worker misses an object, gives it another label, or adds a box of
    their own (see `jittered_answers`).
    """
    if not classes:
        raise ValueError("classes must not be empty")
    if workers < 1:
        raise ValueError("workers must be >= 1")
    generator = make_rng(rng)
    width, height = image_size or (generator.randint(300, 1920), generator.randint(300, 1080))
    submitted = submitted_at or datetime.now(UTC)
    answers = []
    shared = (
        random_bounding_boxes(generator, classes, width, height, generator.randint(*boxes))
        if disagreement is not None
        else None
    )
    for index in range(workers):
        drawn = (
            jittered_answer(generator, shared, classes, width, height, disagreement or 0.0)
            if shared is not None
            else random_bounding_boxes(generator, classes, width, height, generator.randint(*boxes))
        )
        spent = round(generator.uniform(5.0, 120.0), 3)
        submission = submitted + timedelta(seconds=index * generator.uniform(1.0, 60.0))
        acceptance = submission - timedelta(seconds=spent)
        answers.append(
            {
                "acceptanceTime": a2i_timestamp(acceptance),
                "answerContent": {
                    "annotatedResult": {
                        "boundingBoxes": drawn,
                        "inputImageProperties": {"height": height, "width": width},
                    }
                },
                "submissionTime": a2i_timestamp(submission),
                "timeSpentInSeconds": spent,
                "workerId": f"{generator.getrandbits(64):016x}",
                "workerMetadata": {
                    "identityData": {
                        "identityProviderType": "Cognito",
                        "issuer": "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_EmuLat0r",
                        "sub": str(uuid.UUID(int=generator.getrandbits(128), version=4)),
                    }
                },
            }
        )
    return {
        "flowDefinitionArn": flow_definition_arn,
        "humanAnswers": answers,
        "humanLoopName": human_loop_name,
        "inputContent": {
            "initialValue": round(generator.uniform(0.05, 0.5), 2),
            "taskObject": task_object,
        },
    }
