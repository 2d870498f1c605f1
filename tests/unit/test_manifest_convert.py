"""manifest/convert.py against the notebook's converter (verbatim oracle) and on corrupt input."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from retraining_operator.api import LabelsSpec
from retraining_operator.manifest.convert import Converted, Converter, convert_output
from retraining_operator.manifest.quarantine import Quarantined, QuarantineReason
from unit.a2i_strategies import CLASS_LISTS, CLASS_NAMES, RESULT, a2i_time, corrupted, valid_outputs
from unit.seed_oracle import make_seed_converter

PROPERTY = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
VOC = ["aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow"]


def _labels(classes: list[str], **kw: Any) -> LabelsSpec:
    return LabelsSpec(classes=classes, **kw)


@st.composite
def classes_and_output(draw: st.DrawFn) -> tuple[list[str], dict[str, Any]]:
    classes = draw(CLASS_LISTS)
    return classes, draw(valid_outputs(classes))


@PROPERTY
@given(case=classes_and_output(), attribute=st.sampled_from(["a2i-retraining", "bbox", "od_1"]))
def test_valid_output_equals_the_notebook(
    case: tuple[list[str], dict[str, Any]], attribute: str
) -> None:
    classes, document = case
    oracle = make_seed_converter(classes, attribute)
    result = Converter(_labels(classes, attribute_name=attribute)).convert_bytes(
        json.dumps(document).encode()
    )
    assert isinstance(result, Converted), result
    expected = oracle(copy.deepcopy(document))
    assert result.line == json.dumps(expected)  # same text, not only equal dicts
    assert json.loads(result.line) == expected
    assert result.loop_name == document["humanLoopName"]
    assert result.source_ref == document["inputContent"]["taskObject"]


@PROPERTY
@given(case=classes_and_output())
def test_latest_answer_is_the_notebook_on_the_newest_answer(
    case: tuple[list[str], dict[str, Any]],
) -> None:
    classes, document = case
    answers = document["humanAnswers"]
    newest = max(range(len(answers)), key=lambda i: (answers[i]["submissionTime"], -i))
    expected = make_seed_converter(classes)({**document, "humanAnswers": [answers[newest]]})
    result = Converter(_labels(classes, worker_answer="Latest")).convert(document)
    assert isinstance(result, Converted)
    assert result.line == json.dumps(expected)


@PROPERTY
@given(case=st.data(), classes=CLASS_LISTS)
def test_any_corruption_is_quarantined_with_its_reason(
    case: st.DataObject, classes: list[str]
) -> None:
    raw, reason = case.draw(corrupted(classes))
    result = Converter(_labels(classes)).convert_bytes(raw, source="s3://b/k/output.json")
    assert isinstance(result, Quarantined), f"accepted corrupt input: {raw[:300]!r}"
    assert result.reason == QuarantineReason(reason), result.describe()
    assert result.detail
    assert result.source == "s3://b/k/output.json"


@PROPERTY
@given(case=classes_and_output(), data=st.data())
def test_drop_removes_only_the_unknown_boxes_and_says_so(
    case: tuple[list[str], dict[str, Any]], data: st.DataObject
) -> None:
    classes, document = case
    boxes = document["humanAnswers"][0]["answerContent"]["annotatedResult"]["boundingBoxes"]
    unknown = data.draw(CLASS_NAMES.filter(lambda name: name not in classes))
    positions = data.draw(st.sets(st.integers(0, len(boxes)), max_size=3))
    broken = copy.deepcopy(document)
    target = broken["humanAnswers"][0]["answerContent"]["annotatedResult"]["boundingBoxes"]
    for offset, position in enumerate(sorted(positions)):
        target.insert(position + offset, {"label": unknown, "width": "junk"})

    result = Converter(_labels(classes, unknown_label="Drop")).convert(broken)
    assert isinstance(result, Converted)
    assert json.loads(result.line) == make_seed_converter(classes)(document)
    assert [box.label for box in result.dropped] == [unknown] * len(positions)
    assert all(target[box.index]["label"] == unknown for box in result.dropped)

    strict = Converter(_labels(classes)).convert(broken)
    assert isinstance(strict, Quarantined) == bool(positions)


def test_quarantine_names_the_loop_and_the_field() -> None:
    document = {
        "humanLoopName": "loop-7",
        "inputContent": {"taskObject": "s3://bucket/img.jpg"},
        "humanAnswers": [
            {
                "submissionTime": "2020-09-10T17:29:44.012Z",
                "answerContent": {
                    "annotatedResult": {
                        "inputImageProperties": {"width": 100, "height": 50},
                        "boundingBoxes": [
                            {"label": "cat", "left": 90, "top": 0, "width": 20, "height": 10}
                        ],
                    }
                },
            }
        ],
    }
    result = convert_output(json.dumps(document).encode(), _labels(VOC), source="here")
    assert isinstance(result, Quarantined)
    assert result.reason is QuarantineReason.BOX_OUTSIDE_IMAGE
    assert result.loop_name == "loop-7"
    assert "boundingBoxes[0]" in result.detail
    assert result.describe().startswith("here (loop loop-7): BoxOutsideImage:")


def test_loop_name_mismatch_and_size_limit() -> None:
    classes = ["cat"]
    document = {
        "humanLoopName": "other",
        "inputContent": {"taskObject": "s3://bucket/img.jpg"},
        "humanAnswers": [],
    }
    mismatch = Converter(_labels(classes)).convert(document, expected_loop_name="mine")
    assert isinstance(mismatch, Quarantined)
    assert mismatch.reason is QuarantineReason.LOOP_NAME_MISMATCH
    huge = Converter(_labels(classes)).convert_bytes(b" " * (9 * 1024 * 1024))
    assert isinstance(huge, Quarantined)
    assert huge.reason is QuarantineReason.OUTPUT_TOO_LARGE


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"\xff\xfe", "InvalidEncoding"),
        (b"[1, 2]", "InvalidJson"),
        (b'{"humanLoopName": 3}', "InvalidField"),
        (
            b'{"humanLoopName": "a", "inputContent": {"taskObject": "https://x/y.jpg"}}',
            "InvalidField",
        ),
    ],
)
def test_shapes(raw: bytes, reason: str) -> None:
    result = Converter(_labels(["cat"])).convert_bytes(raw)
    assert isinstance(result, Quarantined)
    assert result.reason == reason


def test_latest_needs_every_timestamp() -> None:
    answer = {
        "submissionTime": a2i_time_fixed(),
        "answerContent": {
            "annotatedResult": {
                "inputImageProperties": {"width": 10, "height": 10},
                "boundingBoxes": [],
            }
        },
    }
    document = {
        "humanLoopName": "a",
        "inputContent": {"taskObject": "s3://bucket/img.jpg"},
        "humanAnswers": [answer, {**answer, "submissionTime": "soon"}],
    }
    assert isinstance(Converter(_labels(["cat"])).convert(document), Converted)
    latest = Converter(_labels(["cat"], worker_answer="Latest")).convert(document)
    assert isinstance(latest, Quarantined)
    assert latest.reason is QuarantineReason.INVALID_TIMESTAMP
    assert "humanAnswers[1]" in latest.detail


def a2i_time_fixed() -> str:
    from datetime import UTC, datetime

    return a2i_time(datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC))


def test_result_path_constant_matches_strategy() -> None:
    # The strategies and the converter agree on where boxes live.
    assert RESULT == ("humanAnswers", 0, "answerContent", "annotatedResult")


# -- hostile input: bounded parse, one verdict per output, never an exception ------------


def _seeded(name: str = "loop-1") -> dict[str, Any]:
    import random

    from retraining_standins.seed import random_a2i_output

    return random_a2i_output(
        flow_definition_arn="arn:aws:sagemaker:us-east-1:111122223333:flow-definition/fd-x",
        human_loop_name=name,
        task_object=f"s3://b/{name}.jpg",
        classes=VOC,
        rng=random.Random(name),
    )


@pytest.mark.parametrize("depth", [1_100, 100_000])
def test_deep_nesting_is_too_deep_not_a_recursion_error(depth: int) -> None:
    document = _seeded()
    text = json.dumps(document)
    deep = text[:-1] + ', "extra": ' + "[" * depth + "]" * depth + "}"
    result = Converter(_labels(VOC)).convert_bytes(deep.encode(), expected_loop_name="loop-1")
    assert isinstance(result, Quarantined)
    assert result.reason == QuarantineReason.TOO_DEEP
    assert result.loop_name == "loop-1"


def test_a_5000_digit_integer_is_number_too_large() -> None:
    text = json.dumps(_seeded()).replace('"width": ', '"width": ' + "9" * 5000 + " + ", 1)
    text = text.replace(" + ", "", 1)  # the first width becomes 5000 nines followed by digits
    result = Converter(_labels(VOC)).convert_bytes(text.encode())
    assert isinstance(result, Quarantined)
    assert result.reason == QuarantineReason.NUMBER_TOO_LARGE
    assert "digits" in result.detail
    assert len(result.detail) <= 200  # never the number itself


def test_a_utf8_bom_is_accepted_and_changes_nothing() -> None:
    raw = json.dumps(_seeded()).encode()
    converter = Converter(_labels(VOC))
    plain = converter.convert_bytes(raw)
    with_bom = converter.convert_bytes(b"\xef\xbb\xbf" + raw)
    assert isinstance(plain, Converted)
    assert with_bom == plain


def test_a_converter_bug_quarantines_instead_of_raising(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(self: Converter, document: Any, expected: str | None) -> Converted:
        raise KeyError("surprise")

    monkeypatch.setattr(Converter, "_convert", broken)
    result = Converter(_labels(VOC)).convert_bytes(json.dumps(_seeded()).encode())
    assert isinstance(result, Quarantined)
    assert result.reason == QuarantineReason.CONVERSION_FAILED
    assert "KeyError" in result.detail
    assert result.loop_name == "loop-1"


def test_depth_does_not_depend_on_the_interpreters_recursion_limit() -> None:
    # Any library may raise the recursion limit (cel-python does); the parser's own guard
    # then lets deep input through, or overflows the C stack. The scan does not care.
    import sys

    before = sys.getrecursionlimit()
    sys.setrecursionlimit(50_000)
    try:
        deep = json.dumps(_seeded())[:-1] + ', "extra": ' + "[" * 2_000 + "]" * 2_000 + "}"
        result = Converter(_labels(VOC)).convert_bytes(deep.encode())
    finally:
        sys.setrecursionlimit(before)
    assert isinstance(result, Quarantined)
    assert result.reason == QuarantineReason.TOO_DEEP


def test_brackets_inside_strings_and_escapes_do_not_count_as_depth() -> None:
    document = _seeded()
    document["note"] = '\\"' + "[" * 500 + '\\\\" {{{'
    result = Converter(_labels(VOC)).convert_bytes(json.dumps(document).encode())
    assert not isinstance(result, Quarantined)
