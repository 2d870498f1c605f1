"""Hypothesis strategies for A2I object-detection outputs (valid ones) and their corruptions."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import strategies as st

ATTRIBUTE_NAMES = st.from_regex(r"\A[a-zA-Z0-9](-?[a-zA-Z0-9_]){0,20}\Z").filter(
    lambda name: name != "source-ref" and not name.endswith("-metadata")
)
CLASS_NAMES = st.text(min_size=1, max_size=12)
CLASS_LISTS = st.lists(CLASS_NAMES, min_size=1, max_size=25, unique=True)
_LOWER = "abcdefghijklmnopqrstuvwxyz0123456789"
LOOP_NAMES = st.builds(
    "-".join, st.lists(st.text(_LOWER, min_size=1, max_size=8), min_size=1, max_size=5)
)
BUCKETS = st.text(_LOWER, min_size=3, max_size=20)
KEYS = st.builds("{}.jpg".format, st.text(_LOWER + "ABCXYZ_-/", min_size=1, max_size=30))
TIMES = st.datetimes(
    min_value=datetime(2019, 1, 1), max_value=datetime(2035, 1, 1), timezones=st.just(UTC)
)


def a2i_time(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"


@st.composite
def sizes(draw: st.DrawFn, low: float, high: float) -> int | float:
    """A positive size as A2I writes it: usually an int, sometimes a float."""
    if draw(st.booleans()):
        return draw(st.integers(min_value=max(1, int(low)), max_value=int(high)))
    return draw(
        st.floats(min_value=max(low, 0.5), max_value=high, allow_nan=False, allow_infinity=False)
    )


@st.composite
def boxes(draw: st.DrawFn, classes: list[str], width: float, height: float) -> dict[str, Any]:
    box_width = draw(st.integers(min_value=1, max_value=max(1, int(width))))
    box_height = draw(st.integers(min_value=1, max_value=max(1, int(height))))
    left = draw(st.integers(min_value=0, max_value=max(0, int(width) - box_width)))
    top = draw(st.integers(min_value=0, max_value=max(0, int(height) - box_height)))
    box: dict[str, Any] = {
        "height": box_height,
        "label": draw(st.sampled_from(classes)),
        "left": left,
        "top": top,
        "width": box_width,
    }
    if draw(st.booleans()):  # shuffle key order as different writers do
        box = dict(reversed(list(box.items())))
    return box


@st.composite
def answers(draw: st.DrawFn, classes: list[str]) -> dict[str, Any]:
    width = draw(sizes(1, 4000))
    height = draw(sizes(1, 4000))
    submitted = draw(TIMES)
    return {
        "acceptanceTime": a2i_time(submitted - timedelta(seconds=30)),
        "answerContent": {
            "annotatedResult": {
                "boundingBoxes": draw(
                    st.lists(boxes(classes, width, height), min_size=0, max_size=8)
                ),
                "inputImageProperties": {"height": height, "width": width},
            }
        },
        "submissionTime": a2i_time(submitted),
        "timeSpentInSeconds": draw(st.floats(min_value=0, max_value=1000)),
        "workerId": draw(st.text(min_size=1, max_size=16)),
        "workerMetadata": {"identityData": {"identityProviderType": "Cognito"}},
    }


@st.composite
def valid_outputs(draw: st.DrawFn, classes: list[str]) -> dict[str, Any]:
    loop = draw(LOOP_NAMES)
    return {
        "flowDefinitionArn": "arn:aws:sagemaker:us-east-1:111122223333:flow-definition/fd-x",
        "humanAnswers": draw(st.lists(answers(classes), min_size=1, max_size=3)),
        "humanLoopName": loop,
        "inputContent": {
            "initialValue": draw(st.floats(min_value=0, max_value=1)),
            "taskObject": f"s3://{draw(BUCKETS)}/{draw(KEYS)}",
        },
    }


# -- corruptions: each returns (broken document or raw bytes, expected reason) ---------------

ANSWER = ("humanAnswers", 0)
RESULT = (*ANSWER, "answerContent", "annotatedResult")
IMAGE = (*RESULT, "inputImageProperties")
REQUIRED = [
    ("humanLoopName",),
    ("inputContent",),
    ("inputContent", "taskObject"),
    ("humanAnswers",),
    (*ANSWER, "submissionTime"),
    (*ANSWER, "answerContent"),
    (*ANSWER, "answerContent", "annotatedResult"),
    (*RESULT, "boundingBoxes"),
    (*RESULT, "inputImageProperties"),
    (*IMAGE, "width"),
    (*IMAGE, "height"),
]
BOX_FIELDS = ["label", "width", "height", "left", "top"]
NON_NUMBERS = st.one_of(
    st.text(max_size=5),
    st.none(),
    st.booleans(),
    st.lists(st.integers(), max_size=2),
    st.just(float("nan")),
    st.just(float("inf")),
)


def _at(document: Any, path: tuple[Any, ...]) -> Any:
    for step in path:
        document = document[step]
    return document


@st.composite
def corrupted(draw: st.DrawFn, classes: list[str]) -> tuple[bytes, str]:
    document = draw(valid_outputs(classes))
    broken = copy.deepcopy(document)
    boxes_list = _at(broken, RESULT)["boundingBoxes"]
    kinds = ["json", "missing", "no-answers", "timestamp", "not-object", "image-size"]
    if boxes_list:
        kinds += ["unknown-label", "outside", "non-positive", "non-numeric", "box-missing"]
    kind = draw(st.sampled_from(kinds))
    if kind == "json":
        text = json.dumps(document)
        cut = draw(st.integers(min_value=0, max_value=len(text) - 1))
        junk = draw(st.sampled_from(["", "}", ",", "{{"]))
        # A trailing NUL is never valid JSON (after a value: extra data; in a string: control).
        return (text[:cut] + junk + "\x00").encode(), "InvalidJson"
    if kind == "missing":
        path = draw(st.sampled_from(REQUIRED))
        del _at(broken, path[:-1])[path[-1]]
        return json.dumps(broken).encode(), "MissingField"
    if kind == "no-answers":
        broken["humanAnswers"] = []
        return json.dumps(broken).encode(), "NoAnswers"
    if kind == "timestamp":
        _at(broken, ANSWER)["submissionTime"] = draw(
            st.sampled_from(["yesterday", "2020-13-45T99:00:00Z", "12:00", "20/10/2020"])
        )
        return json.dumps(broken).encode(), "InvalidTimestamp"
    if kind == "not-object":
        path = draw(st.sampled_from([("inputContent",), ANSWER, (*ANSWER, "answerContent")]))
        _at(broken, path[:-1])[path[-1]] = draw(st.sampled_from([[], "x", 3]))
        return json.dumps(broken).encode(), "InvalidField"
    if kind == "image-size":
        field = draw(st.sampled_from(["width", "height"]))
        _at(broken, IMAGE)[field] = draw(st.sampled_from([0, -1, -0.5, 0.0]))
        return json.dumps(broken).encode(), "NonPositiveSize"
    index = draw(st.integers(min_value=0, max_value=len(boxes_list) - 1))
    box = boxes_list[index]
    image = _at(broken, IMAGE)
    if kind == "unknown-label":
        label = draw(CLASS_NAMES.filter(lambda name: name not in classes))
        box["label"] = label
        return json.dumps(broken).encode(), "UnknownLabel"
    if kind == "outside":
        side = draw(st.sampled_from(["left", "top", "right", "bottom"]))
        overshoot = draw(st.integers(min_value=1, max_value=50))
        if side == "left":
            box["left"] = -overshoot
        elif side == "top":
            box["top"] = -overshoot
        elif side == "right":
            box["left"] = image["width"] - box["width"] + overshoot
        else:
            box["top"] = image["height"] - box["height"] + overshoot
        return json.dumps(broken).encode(), "BoxOutsideImage"
    if kind == "non-positive":
        box[draw(st.sampled_from(["width", "height"]))] = draw(st.sampled_from([0, -3, -0.1]))
        return json.dumps(broken).encode(), "NonPositiveSize"
    if kind == "non-numeric":
        box[draw(st.sampled_from(["width", "height", "left", "top"]))] = draw(NON_NUMBERS)
        return json.dumps(broken).encode(), "NonNumeric"
    field = draw(st.sampled_from(BOX_FIELDS))
    del box[field]
    return json.dumps(broken).encode(), "MissingField"
