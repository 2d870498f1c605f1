"""One A2I `output.json` -> one augmented-manifest line for SageMaker object detection.

For valid input the line is exactly what the workshop notebook's
`convert_a2i_to_augmented_manifest` produces (same keys, same order, same values,
serialised with `json.dumps` defaults), with class ids taken from `spec.labels.classes`
(index = id) and the attribute named by `spec.labels.attributeName`:

    {"source-ref": inputContent.taskObject,
     "<attr>": {"annotations": [{"class_id", "width", "top", "height", "left"}, ...],
                "image_size": [{"width", "depth": 3, "height"}]},
     "<attr>-metadata": {"job-name": "a2i/<humanLoopName>", "class-map": {"0": ...},
                         "human-annotated": "yes", "objects": [{"confidence": 1}, ...],
                         "creation-date": <submissionTime>, "type": "groundtruth/object-detection"}}

Several worker answers (`labels.consolidation.mode`, or the older `labels.workerAnswer`):
`First` (default, as the notebook) takes `humanAnswers[0]`; `Latest` takes the answer with
the newest `submissionTime` (the first of equals). Only the chosen answer is validated and
used; with `Latest` every answer's `submissionTime` must parse. `Consensus` validates every
answer and consolidates per *worker*, not per answer, as Ground Truth does: answers are
grouped by the hashed `workerId`, and of a worker's several answers only the newest by
`submissionTime` (the first of equals in the output) is used, so one worker counts once
however many answers carry its id; all the answers without a `workerId` (or with an
empty one) are one anonymous worker, so leaving the id out cannot add votes. With one
distinct worker the line is the one-answer line of that worker's answer. With several,
their answers are consolidated (manifest/consolidate.py): averaged boxes, `confidence` =
the share of distinct workers who drew the box, and three more metadata keys:
`worker-count` (distinct workers), `agreement` (their mean agreement with the consensus)
and `agreeing-workers` (how many of them reach `minAgreement`). An image the workers
disagree on is quarantined `WorkersDisagree`; its record lists every answer's boxes (by
hashed worker, in output order, a worker's superseded answers included).
`Converted.workers` has one score per distinct named worker (the anonymous one has no
name to score). With one answer every mode writes the notebook's line.

`labels.imageS3Prefixes`, when set, is an allow-list for `inputContent.taskObject`: an
image elsewhere is quarantined `ForeignImage`.

Anything the notebook would crash on, or would turn into a line that trains the model on
garbage, is quarantined instead (see `QuarantineReason`): the first problem found is
reported, with the JSON path of the offending field (reading and field access:
manifest/a2i_output.py). A box whose label is not a known
class is quarantined with the whole sample, unless `labels.unknownLabel: Drop`, which
drops only that box and reports it in `Converted.dropped`.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from retraining_operator.api import ConsolidationMode, LabelsSpec, UnknownLabel
from retraining_operator.manifest.a2i_output import (
    MAX_OUTPUT_BYTES,
    Rejected,
    is_s3_object_uri,
    json_type,
    number_field,
    object_field,
    parse_output,
    parse_time,
    required,
    safe_text,
    string_field,
)
from retraining_operator.manifest.consolidate import (
    Box,
    ConsensusBox,
    Disagreement,
    WorkerBoxes,
    consolidate,
    worker_hash,
)
from retraining_operator.manifest.quarantine import Quarantined, QuarantineReason

# MAX_OUTPUT_BYTES lives with the reading (a2i_output.py); the ingest flows take it from here.
__all__ = [
    "MAX_CONSENSUS_BOXES",
    "MAX_OUTPUT_BYTES",
    "OBJECT_DETECTION_TYPE",
    "ConversionResult",
    "Converted",
    "Converter",
    "DroppedBox",
    "WorkerScore",
    "class_map",
    "convert_output",
]

OBJECT_DETECTION_TYPE = "groundtruth/object-detection"
# Boxes of all workers of one image that Consensus matches (pairwise); a VOC image has
# under 50 objects, so 3 workers stay far below.
MAX_CONSENSUS_BOXES = 600


@dataclass(frozen=True)
class DroppedBox:
    """A box removed under `unknownLabel: Drop`."""

    index: int
    label: str


@dataclass(frozen=True)
class Converted:
    """A valid sample: the manifest line (JSON text, no newline) and what it came from."""

    loop_name: str
    source_ref: str
    line: str
    submission_time: str
    boxes: int
    dropped: tuple[DroppedBox, ...] = field(default=())
    source: str | None = None  # where the raw output came from (path or s3:// URI)
    # Consensus with several workers: each distinct named worker's agreement with the
    # consensus (one entry per worker, however many answers carry its id).
    workers: tuple[WorkerScore, ...] = field(default=())


@dataclass(frozen=True)
class WorkerScore:
    worker: str  # a stable hash of the workerId (consolidate.worker_hash)
    agreement: float


@dataclass(frozen=True)
class _Answer:
    """One validated worker answer."""

    worker: str | None
    submission_time: str
    submitted: datetime
    image: Mapping[str, Any]
    image_size: tuple[float, float]
    boxes: tuple[Box, ...]
    dropped: tuple[DroppedBox, ...]


@dataclass(frozen=True)
class _Labelling:
    """What a line says about its image: the boxes (an annotation and an `objects` entry
    each), the image as the workers reported it, when, and the consensus keys if any."""

    annotations: list[dict[str, Any]]
    objects: list[dict[str, Any]]
    image: Mapping[str, Any]
    creation_date: str
    consensus: Mapping[str, Any] | None = None


def _evidence(answers: Sequence[_Answer]) -> tuple[dict[str, Any], ...]:
    """Per-answer boxes for a WorkersDisagree record (hashed worker, never identity data):
    every answer in output order, a worker's superseded answers included."""
    return tuple(
        {"worker": answer.worker, "boxes": [box.to_json() for box in answer.boxes[:100]]}
        for answer in answers
    )


def _one_per_worker(answers: Sequence[_Answer]) -> list[_Answer]:
    """The answer used for each distinct worker: the newest by submissionTime, the first
    in the output of equals; in output order, so a worker's older answers change nothing.
    The answers without a workerId (`worker` None) are one anonymous worker."""
    chosen: dict[str | None, tuple[int, _Answer]] = {}
    for index, answer in enumerate(answers):
        current = chosen.get(answer.worker)
        if current is None or answer.submitted > current[1].submitted:
            chosen[answer.worker] = (index, answer)
    return [answer for _, answer in sorted(chosen.values(), key=lambda entry: entry[0])]


def _annotations(
    boxes: Sequence[Box | ConsensusBox], class_ids: Mapping[str, int]
) -> list[dict[str, Any]]:
    """The notebook's annotation objects (same key order, the values as given)."""
    return [
        {
            "class_id": class_ids[box.label],
            "width": box.width,
            "top": box.top,
            "height": box.height,
            "left": box.left,
        }
        for box in boxes
    ]


def _image_form(image: Mapping[str, Any]) -> tuple[bool, bool]:
    return (isinstance(image["width"], float), isinstance(image["height"], float))


def _under_prefix(uri: str, prefix: str) -> bool:
    """`uri` lies in the bucket or folder `prefix` names: `s3://images` covers
    `s3://images/a.jpg` but not `s3://images-other/a.jpg`."""
    folder = prefix if prefix.endswith("/") else prefix + "/"
    return uri.startswith(folder)


ConversionResult = Converted | Quarantined


def class_map(classes: Sequence[str]) -> dict[str, str]:
    """`{"0": "aeroplane", ...}` as the notebook builds it (index = class id)."""
    return {str(i): name for i, name in enumerate(classes)}


class Converter:
    """Converts A2I outputs for one label configuration (class ids computed once)."""

    def __init__(self, labels: LabelsSpec) -> None:
        self.labels = labels
        self.attribute = labels.attribute_name
        self._class_map = class_map(labels.classes)
        self._class_ids = {name: i for i, name in enumerate(labels.classes)}
        self.mode = labels.consolidation_mode

    def convert_bytes(
        self,
        raw: bytes,
        *,
        source: str | None = None,
        expected_loop_name: str | None = None,
    ) -> ConversionResult:
        """Parse and convert one `output.json`; never raises for bad content."""
        try:
            document = parse_output(raw)
        except Rejected as reject:
            return Quarantined(
                reject.reason,
                reject.detail,
                loop_name=expected_loop_name,
                source=source,
                size=len(raw) if reject.reason is QuarantineReason.OUTPUT_TOO_LARGE else None,
            )
        return self.convert(document, source=source, expected_loop_name=expected_loop_name)

    def convert(
        self,
        document: Any,
        *,
        source: str | None = None,
        expected_loop_name: str | None = None,
    ) -> ConversionResult:
        """Convert one parsed `output.json`; never raises for bad content."""
        loop_name = expected_loop_name
        if isinstance(document, Mapping) and isinstance(document.get("humanLoopName"), str):
            loop_name = document["humanLoopName"] or expected_loop_name
        try:
            converted = self._convert(document, expected_loop_name)
        except Rejected as reject:
            return Quarantined(
                reject.reason,
                reject.detail,
                loop_name=loop_name,
                source=source,
                workers=reject.workers,
            )
        except Exception as error:  # one output must never stop a batch
            # A converter bug on some input: quarantine it (with its type, for the bug
            # report) rather than abort the poll or retry the same input forever.
            return Quarantined(
                QuarantineReason.CONVERSION_FAILED,
                f"the converter failed on this output: {type(error).__name__}: {safe_text(error)}",
                loop_name=loop_name,
                source=source,
            )
        return converted if source is None else dataclasses.replace(converted, source=source)

    # -- internals ----------------------------------------------------------------------

    def _convert(self, document: Any, expected_loop_name: str | None) -> Converted:
        if not isinstance(document, Mapping):
            raise Rejected(
                QuarantineReason.INVALID_JSON,
                f"the document is a JSON {json_type(document)}, not an object",
            )
        loop_name = string_field(document, "humanLoopName", "humanLoopName")
        if expected_loop_name is not None and loop_name != expected_loop_name:
            raise Rejected(
                QuarantineReason.LOOP_NAME_MISMATCH,
                f"humanLoopName is {loop_name!r} but the output belongs to loop "
                f"{expected_loop_name!r}",
            )
        input_content = object_field(document, "inputContent", "inputContent")
        source_ref = string_field(input_content, "taskObject", "inputContent.taskObject")
        if not is_s3_object_uri(source_ref):
            raise Rejected(
                QuarantineReason.INVALID_FIELD,
                f"inputContent.taskObject must be an s3://bucket/key URI, got {source_ref[:200]!r}",
            )
        self._check_provenance(source_ref)
        answers = required(document, "humanAnswers", "humanAnswers")
        if not isinstance(answers, list):
            raise Rejected(
                QuarantineReason.INVALID_FIELD,
                f"humanAnswers must be a list, got a JSON {json_type(answers)}",
            )
        if not answers:
            raise Rejected(QuarantineReason.NO_ANSWERS, "humanAnswers is empty: nobody answered")
        if self.mode is ConsolidationMode.CONSENSUS and len(answers) > 1:
            return self._consensus(answers, loop_name, source_ref)
        index = self._choose_answer(answers)
        parsed = self._parse_answer(answers[index], f"humanAnswers[{index}]")
        return self._single(parsed, loop_name, source_ref)

    def _single(self, parsed: _Answer, loop_name: str, source_ref: str) -> Converted:
        """The notebook's line for one answer (confidence 1, no consensus keys)."""
        annotations = _annotations(parsed.boxes, self._class_ids)
        labelling = _Labelling(
            annotations=annotations,
            objects=[{"confidence": 1} for _ in annotations],
            image=parsed.image,
            creation_date=parsed.submission_time,
        )
        line = self._line(source_ref, loop_name, labelling)
        return Converted(
            loop_name=loop_name,
            source_ref=source_ref,
            line=json.dumps(line),
            submission_time=parsed.submission_time,
            boxes=len(annotations),
            dropped=parsed.dropped,
        )

    def _line(self, source_ref: str, loop_name: str, labelling: _Labelling) -> dict[str, Any]:
        # Same key order and the same (unconverted) values as the notebook.
        image = labelling.image
        return {
            "source-ref": source_ref,
            self.attribute: {
                "annotations": labelling.annotations,
                "image_size": [{"width": image["width"], "depth": 3, "height": image["height"]}],
            },
            f"{self.attribute}-metadata": {
                "job-name": f"a2i/{loop_name}",
                "class-map": self._class_map,
                "human-annotated": "yes",
                "objects": labelling.objects,
                "creation-date": labelling.creation_date,
                "type": OBJECT_DETECTION_TYPE,
                **(labelling.consensus or {}),
            },
        }

    def _check_provenance(self, source_ref: str) -> None:
        prefixes = self.labels.image_s3_prefixes
        if prefixes and not any(_under_prefix(source_ref, prefix) for prefix in prefixes):
            raise Rejected(
                QuarantineReason.FOREIGN_IMAGE,
                f"inputContent.taskObject {source_ref[:200]!r} is not under any of "
                "spec.labels.imageS3Prefixes",
            )

    def _parse_answer(self, answer: Any, path: str) -> _Answer:
        """Validate one worker's answer; its boxes keep the JSON numbers as given."""
        if not isinstance(answer, Mapping):
            raise Rejected(QuarantineReason.INVALID_FIELD, f"{path} must be an object")
        submission_time = string_field(answer, "submissionTime", f"{path}.submissionTime")
        when = parse_time(submission_time, f"{path}.submissionTime")
        content = object_field(answer, "answerContent", f"{path}.answerContent")
        result = object_field(content, "annotatedResult", f"{path}.answerContent.annotatedResult")
        result_path = f"{path}.answerContent.annotatedResult"
        image = object_field(result, "inputImageProperties", f"{result_path}.inputImageProperties")
        image_path = f"{result_path}.inputImageProperties"
        image_width = number_field(image, "width", f"{image_path}.width")
        image_height = number_field(image, "height", f"{image_path}.height")
        if image_width <= 0 or image_height <= 0:
            raise Rejected(
                QuarantineReason.NON_POSITIVE_SIZE,
                f"{image_path} is {image_width}x{image_height}: the image must have a "
                "positive width and height",
            )
        boxes = required(result, "boundingBoxes", f"{result_path}.boundingBoxes")
        if not isinstance(boxes, list):
            raise Rejected(
                QuarantineReason.INVALID_FIELD,
                f"{result_path}.boundingBoxes must be a list, got a JSON {json_type(boxes)}",
            )
        kept: list[Box] = []
        dropped: list[DroppedBox] = []
        for number, box in enumerate(boxes):
            box_path = f"{result_path}.boundingBoxes[{number}]"
            if not isinstance(box, Mapping):
                raise Rejected(QuarantineReason.INVALID_FIELD, f"{box_path} must be an object")
            label = required(box, "label", f"{box_path}.label")
            if not isinstance(label, str):
                raise Rejected(
                    QuarantineReason.INVALID_FIELD,
                    f"{box_path}.label must be a string, got a JSON {json_type(label)}",
                )
            if label not in self._class_ids:
                if self.labels.unknown_label is UnknownLabel.DROP:
                    dropped.append(DroppedBox(number, label))
                    continue
                raise Rejected(
                    QuarantineReason.UNKNOWN_LABEL,
                    f"{box_path}.label {label[:128]!r} is not one of spec.labels.classes",
                )
            width = number_field(box, "width", f"{box_path}.width")
            top = number_field(box, "top", f"{box_path}.top")
            height = number_field(box, "height", f"{box_path}.height")
            left = number_field(box, "left", f"{box_path}.left")
            if width <= 0 or height <= 0:
                raise Rejected(
                    QuarantineReason.NON_POSITIVE_SIZE,
                    f"{box_path} is {width}x{height}: a box must have a positive width and height",
                )
            if left < 0 or top < 0 or left + width > image_width or top + height > image_height:
                raise Rejected(
                    QuarantineReason.BOX_OUTSIDE_IMAGE,
                    f"{box_path} (left {left}, top {top}, width {width}, height {height}) "
                    f"reaches outside the {image_width}x{image_height} image",
                )
            kept.append(Box(label, box["left"], box["top"], box["width"], box["height"]))
        worker_id = answer.get("workerId")
        return _Answer(
            worker=worker_hash(worker_id) if isinstance(worker_id, str) and worker_id else None,
            submission_time=submission_time,
            submitted=when,
            image=image,
            image_size=(image_width, image_height),
            boxes=tuple(kept),
            dropped=tuple(dropped),
        )

    def _consensus(self, answers: list[Any], loop_name: str, source_ref: str) -> Converted:
        parsed = [self._parse_answer(a, f"humanAnswers[{i}]") for i, a in enumerate(answers)]
        used = _one_per_worker(parsed)  # one answer per distinct worker
        if len(used) == 1:
            return self._single(used[0], loop_name, source_ref)
        sizes = {answer.image_size for answer in used}
        if len(sizes) > 1:
            raise Rejected(
                QuarantineReason.WORKERS_DISAGREE,
                f"the workers saw different image sizes: {sorted(sizes)[:3]}",
                workers=_evidence(parsed),
            )
        ((image_width, image_height),) = sizes
        drawn = sum(len(answer.boxes) for answer in used)
        if drawn > MAX_CONSENSUS_BOXES:
            # Matching compares every pair of boxes of two workers: bound the work a
            # single (hostile or broken) output can ask for.
            raise Rejected(
                QuarantineReason.INVALID_FIELD,
                f"{drawn} boxes across {len(used)} workers, more than the "
                f"{MAX_CONSENSUS_BOXES} Consensus consolidates for one image",
            )
        settings = self.labels.effective_consolidation
        outcome = consolidate(
            [WorkerBoxes(answer.worker, answer.boxes) for answer in used],
            image_width=image_width,
            image_height=image_height,
            iou_threshold=settings.iou_threshold,
            min_agreement=settings.min_agreement,
        )
        if isinstance(outcome, Disagreement):
            raise Rejected(
                QuarantineReason.WORKERS_DISAGREE, outcome.detail, workers=_evidence(parsed)
            )
        annotations = _annotations(outcome.boxes, self._class_ids)
        # The image as the workers reported it (a whole number when any wrote one).
        image = min((answer.image for answer in used), key=_image_form)
        newest = max(used, key=lambda answer: (answer.submitted, answer.submission_time))
        labelling = _Labelling(
            annotations=annotations,
            objects=[{"confidence": box.confidence} for box in outcome.boxes],
            image=image,
            creation_date=newest.submission_time,
            consensus={
                "worker-count": outcome.workers,  # distinct workers
                "agreement": outcome.agreement,
                "agreeing-workers": outcome.agreeing,
            },
        )
        line = self._line(source_ref, loop_name, labelling)
        return Converted(
            loop_name=loop_name,
            source_ref=source_ref,
            line=json.dumps(line),
            submission_time=newest.submission_time,
            boxes=len(annotations),
            dropped=tuple(d for answer in used for d in answer.dropped),
            workers=tuple(
                WorkerScore(worker, score)
                for worker, score in outcome.per_worker
                if worker is not None
            ),
        )

    def _choose_answer(self, answers: list[Any]) -> int:
        if self.mode is not ConsolidationMode.LATEST:
            return 0
        best_index = 0
        best_time: datetime | None = None
        for index, answer in enumerate(answers):
            path = f"humanAnswers[{index}]"
            if not isinstance(answer, Mapping):
                raise Rejected(QuarantineReason.INVALID_FIELD, f"{path} must be an object")
            when = parse_time(
                string_field(answer, "submissionTime", f"{path}.submissionTime"),
                f"{path}.submissionTime",
            )
            if best_time is None or when > best_time:
                best_index, best_time = index, when
        return best_index


def convert_output(
    raw: bytes,
    labels: LabelsSpec,
    *,
    source: str | None = None,
    expected_loop_name: str | None = None,
) -> ConversionResult:
    """Convenience: `Converter(labels).convert_bytes(raw, ...)`."""
    return Converter(labels).convert_bytes(
        raw, source=source, expected_loop_name=expected_loop_name
    )
