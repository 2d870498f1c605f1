"""Consensus of several workers (manifest/consolidate.py through the converter)."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from retraining_operator.api import LabelsSpec
from retraining_operator.manifest.consolidate import (
    Box,
    Consensus,
    Disagreement,
    WorkerBoxes,
    consolidate,
    iou,
    worker_hash,
)
from retraining_operator.manifest.convert import Converted, Converter
from retraining_operator.manifest.quarantine import (
    Quarantined,
    QuarantineReason,
    quarantine_record,
)
from unit.a2i_strategies import CLASS_LISTS, answers, valid_outputs
from unit.seed_oracle import make_seed_converter

PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
VOC = ["aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow"]
MODES = ["First", "Latest", "Consensus"]


def _labels(classes: list[str], mode: str = "Consensus", **kw: Any) -> LabelsSpec:
    return LabelsSpec(classes=classes, consolidation={"mode": mode, **kw})


def _metadata(result: Converted, attribute: str = "a2i-retraining") -> dict[str, Any]:
    return json.loads(result.line)[f"{attribute}-metadata"]  # type: ignore[no-any-return]


def _annotations(result: Converted, attribute: str = "a2i-retraining") -> list[dict[str, Any]]:
    return json.loads(result.line)[attribute]["annotations"]  # type: ignore[no-any-return]


def _document(workers: list[list[dict[str, Any]]], size: tuple[int, int] = (640, 480)) -> dict:
    return {
        "flowDefinitionArn": "arn:aws:sagemaker:us-east-1:111122223333:flow-definition/fd",
        "humanLoopName": "loop-1",
        "inputContent": {"taskObject": "s3://images/voc/0001.jpg"},
        "humanAnswers": [
            {
                "answerContent": {
                    "annotatedResult": {
                        "boundingBoxes": boxes,
                        "inputImageProperties": {"width": size[0], "height": size[1]},
                    }
                },
                "submissionTime": f"2026-11-29T10:0{index}:00.000Z",
                "workerId": f"worker-{index}-private-id",
                "workerMetadata": {
                    "identityData": {
                        "identityProviderType": "Cognito",
                        "issuer": "https://cognito-idp.us-east-1.amazonaws.com/pool",
                        "sub": f"secret-subject-{index}",
                    }
                },
            }
            for index, boxes in enumerate(workers)
        ],
    }


def _box(label: str, left: int, top: int, width: int, height: int) -> dict[str, Any]:
    return {"label": label, "left": left, "top": top, "width": width, "height": height}


# -- properties ------------------------------------------------------------------------


@st.composite
def one_answer(draw: st.DrawFn) -> tuple[list[str], dict[str, Any]]:
    classes = draw(CLASS_LISTS)
    document = draw(valid_outputs(classes))
    document["humanAnswers"] = document["humanAnswers"][:1]
    return classes, document


@PROPERTY
@given(case=one_answer(), mode=st.sampled_from(MODES))
def test_with_one_answer_every_mode_writes_the_seed_line(
    case: tuple[list[str], dict[str, Any]], mode: str
) -> None:
    classes, document = case
    expected = make_seed_converter(classes)(copy.deepcopy(document))
    result = Converter(_labels(classes, mode)).convert(document)
    assert isinstance(result, Converted), result
    assert result.line == json.dumps(expected)


@st.composite
def identical_workers(draw: st.DrawFn) -> tuple[list[str], dict[str, Any], int]:
    classes = draw(CLASS_LISTS)
    answer = draw(answers(classes))
    count = draw(st.integers(min_value=2, max_value=3))
    copies = []
    for index in range(count):
        worker = copy.deepcopy(answer)
        worker["workerId"] = f"{answer['workerId']}-{index}"
        copies.append(worker)
    document = {
        "humanLoopName": "loop-x",
        "inputContent": {"taskObject": "s3://bucket/image.jpg"},
        "humanAnswers": copies,
    }
    return classes, document, count


@PROPERTY
@given(case=identical_workers())
def test_identical_answers_give_the_same_boxes_with_confidence_one(
    case: tuple[list[str], dict[str, Any], int],
) -> None:
    classes, document, count = case
    single = {**document, "humanAnswers": document["humanAnswers"][:1]}
    seed = make_seed_converter(classes)(copy.deepcopy(single))
    result = Converter(_labels(classes)).convert(document)
    assert isinstance(result, Converted), result
    line = json.loads(result.line)
    assert line["a2i-retraining"] == seed["a2i-retraining"]  # same boxes, same order, same values
    metadata = line["a2i-retraining-metadata"]
    assert metadata["objects"] == seed["a2i-retraining-metadata"]["objects"]  # confidence 1
    assert metadata["worker-count"] == count
    assert metadata["agreement"] == 1.0
    assert all(score.agreement == 1.0 for score in result.workers)


@st.composite
def jittered_workers(draw: st.DrawFn) -> tuple[list[str], dict[str, Any], dict[str, float]]:
    """2-3 workers who saw the same image: the same boxes give or take a few pixels,
    sometimes a missed box, another label or an extra box."""
    classes = draw(st.lists(st.sampled_from(VOC), min_size=1, max_size=4, unique=True))
    width = draw(st.integers(min_value=20, max_value=2000))
    height = draw(st.integers(min_value=20, max_value=2000))

    def clamp(left: int, top: int, w: int, h: int) -> tuple[int, int, int, int]:
        w = min(max(1, w), width)
        h = min(max(1, h), height)
        return min(max(0, left), width - w), min(max(0, top), height - h), w, h

    base = []
    for _ in range(draw(st.integers(min_value=0, max_value=4))):
        w = draw(st.integers(min_value=1, max_value=width))
        h = draw(st.integers(min_value=1, max_value=height))
        left = draw(st.integers(min_value=0, max_value=width - w))
        top = draw(st.integers(min_value=0, max_value=height - h))
        base.append((draw(st.sampled_from(classes)), left, top, w, h))
    jitter = st.integers(min_value=-4, max_value=4)
    workers = []
    for _ in range(draw(st.integers(min_value=2, max_value=3))):
        drawn = []
        for label, left, top, w, h in base:
            if draw(st.integers(min_value=0, max_value=9)) == 0:
                continue  # missed it
            if draw(st.integers(min_value=0, max_value=9)) == 0:
                label = draw(st.sampled_from(classes))
            box = clamp(left + draw(jitter), top + draw(jitter), w + draw(jitter), h + draw(jitter))
            drawn.append(_box(label, *box))
        if draw(st.integers(min_value=0, max_value=5)) == 0:
            w = draw(st.integers(min_value=1, max_value=width))
            h = draw(st.integers(min_value=1, max_value=height))
            drawn.append(_box(draw(st.sampled_from(classes)), 0, 0, w, h))
        workers.append(drawn)
    knobs = {
        "iouThreshold": draw(st.sampled_from([0.3, 0.5, 0.7, 0.9])),
        "minAgreement": draw(st.sampled_from([0.34, 0.5, 0.67, 1.0])),
    }
    return classes, _document(workers, (width, height)), knobs


@PROPERTY
@given(case=jittered_workers(), data=st.data())
def test_permuting_the_workers_never_changes_the_result(
    case: tuple[list[str], dict[str, Any], dict[str, float]], data: st.DataObject
) -> None:
    classes, document, knobs = case
    converter = Converter(_labels(classes, **knobs))
    first = converter.convert(document)
    shuffled = copy.deepcopy(document)
    shuffled["humanAnswers"] = data.draw(st.permutations(document["humanAnswers"]))
    second = converter.convert(shuffled)
    assert type(first) is type(second)
    if isinstance(first, Converted):
        assert isinstance(second, Converted)
        assert first.line == second.line
        assert sorted(first.workers, key=lambda s: s.worker) == sorted(
            second.workers, key=lambda s: s.worker
        )
    else:
        assert isinstance(second, Quarantined)
        assert first.reason == second.reason


@PROPERTY
@given(case=jittered_workers())
def test_averaged_boxes_stay_inside_the_image(
    case: tuple[list[str], dict[str, Any], dict[str, float]],
) -> None:
    classes, document, knobs = case
    result = Converter(_labels(classes, **knobs)).convert(document)
    if isinstance(result, Quarantined):
        assert result.reason is QuarantineReason.WORKERS_DISAGREE
        return
    image = document["humanAnswers"][0]["answerContent"]["annotatedResult"]["inputImageProperties"]
    metadata = _metadata(result)
    for box, obj in zip(_annotations(result), metadata["objects"], strict=True):
        assert box["left"] >= 0
        assert box["top"] >= 0
        assert box["width"] > 0
        assert box["height"] > 0
        assert box["left"] + box["width"] <= image["width"]
        assert box["top"] + box["height"] <= image["height"]
        assert knobs["minAgreement"] - 0.01 <= obj["confidence"] <= 1
    assert 0 <= metadata["agreement"] <= 1


# -- the worked examples -----------------------------------------------------------------


def test_two_of_three_agree_one_box_the_mean_of_the_two() -> None:
    document = _document(
        [
            [_box("car", 100, 50, 200, 120)],
            [_box("car", 104, 47, 198, 125)],
            [_box("bus", 400, 300, 80, 60)],  # somewhere else entirely
        ]
    )
    result = Converter(_labels(VOC)).convert(document)
    assert isinstance(result, Converted), result
    assert _annotations(result) == [
        {"class_id": VOC.index("car"), "width": 199, "top": 49, "height": 123, "left": 102}
    ]
    metadata = _metadata(result)
    assert metadata["objects"] == [{"confidence": 0.67}]
    assert metadata["worker-count"] == 3
    assert metadata["human-annotated"] == "yes"
    assert metadata["creation-date"] == "2026-11-29T10:02:00.000Z"  # the last worker's
    scores = {score.worker: score.agreement for score in result.workers}
    assert scores == {
        worker_hash("worker-0-private-id"): 1.0,
        worker_hash("worker-1-private-id"): 1.0,
        worker_hash("worker-2-private-id"): 0.0,
    }
    assert metadata["agreement"] == pytest.approx(2 / 3, abs=1e-4)


def test_a_fully_disagreeing_image_is_quarantined_with_each_workers_boxes() -> None:
    document = _document(
        [
            [_box("car", 10, 10, 50, 50)],
            [_box("car", 200, 200, 50, 50)],
            [_box("cat", 400, 10, 60, 60)],
        ]
    )
    raw = json.dumps(document).encode()
    result = Converter(_labels(VOC)).convert_bytes(raw, source="s3://out/a.json")
    assert isinstance(result, Quarantined)
    assert result.reason is QuarantineReason.WORKERS_DISAGREE
    record = json.loads(quarantine_record(result, raw, at=__import__("datetime").datetime.now()))
    assert record["reason"] == "WorkersDisagree"
    assert [w["boxes"] for w in record["workers"]] == [
        [_box("car", 10, 10, 50, 50)],
        [_box("car", 200, 200, 50, 50)],
        [_box("cat", 400, 10, 60, 60)],
    ]
    text = json.dumps(record)
    assert "secret-subject" not in text
    assert "private-id" not in text
    assert "cognito-idp" not in text


def test_a_split_label_is_quarantined_not_guessed() -> None:
    document = _document([[_box("car", 10, 10, 50, 50)], [_box("bus", 11, 10, 50, 50)]])
    result = Converter(_labels(VOC, minAgreement=1.0)).convert(document)
    assert isinstance(result, Quarantined)
    assert result.reason is QuarantineReason.WORKERS_DISAGREE
    assert "label" in result.detail


def test_workers_who_saw_different_image_sizes_disagree() -> None:
    document = _document([[_box("car", 10, 10, 50, 50)], [_box("car", 10, 10, 50, 50)]])
    document["humanAnswers"][1]["answerContent"]["annotatedResult"]["inputImageProperties"] = {
        "width": 100,
        "height": 100,
    }
    result = Converter(_labels(VOC)).convert(document)
    assert isinstance(result, Quarantined)
    assert result.reason is QuarantineReason.WORKERS_DISAGREE


def test_first_and_latest_still_take_one_answer_with_several_workers() -> None:
    document = _document([[_box("car", 10, 10, 50, 50)], [_box("bus", 300, 300, 50, 50)]])
    first = Converter(_labels(VOC, "First")).convert(document)
    latest = Converter(_labels(VOC, "Latest")).convert(document)
    assert isinstance(first, Converted)
    assert isinstance(latest, Converted)
    assert _annotations(first)[0]["class_id"] == VOC.index("car")
    assert _annotations(latest)[0]["class_id"] == VOC.index("bus")
    assert "worker-count" not in _metadata(first)


def test_consolidate_matches_one_box_per_worker() -> None:
    # Worker 0 drew the same car twice: only one of them can join worker 1's box.
    car = Box("car", 10, 10, 50, 50)
    outcome = consolidate(
        [WorkerBoxes("a", (car, car)), WorkerBoxes("b", (car,))],
        image_width=100,
        image_height=100,
        iou_threshold=0.5,
        min_agreement=1.0,
    )
    assert isinstance(outcome, Disagreement)  # 2 boxes vs 1: the count does not agree
    assert iou(car, Box("car", 35, 10, 50, 50)) == pytest.approx(25 * 50 / (2 * 2500 - 25 * 50))
    empty = consolidate(
        [WorkerBoxes("a", ()), WorkerBoxes("b", ())],
        image_width=10,
        image_height=10,
        iou_threshold=0.5,
        min_agreement=0.5,
    )
    assert isinstance(empty, Consensus)
    assert empty.boxes == ()
    assert empty.agreement == 1.0


# -- one vote per worker, however many answers carry its id -------------------------------


def _as(document: dict[str, Any], ids: list[str | None], times: list[str]) -> dict[str, Any]:
    """`document` with each answer's workerId (None: no workerId) and submissionTime set."""
    for answer, worker_id, time in zip(document["humanAnswers"], ids, times, strict=True):
        answer["submissionTime"] = time
        if worker_id is None:
            del answer["workerId"]
        else:
            answer["workerId"] = worker_id
    return document


def _at(minute: int) -> str:
    return f"2026-11-29T10:{minute:02d}:00.000Z"


def _seed_line(document: dict[str, Any], index: int) -> str:
    """The notebook's line for `document` with only its answer `index`."""
    single = {**document, "humanAnswers": [document["humanAnswers"][index]]}
    return json.dumps(make_seed_converter(VOC)(copy.deepcopy(single)))


def test_three_answers_of_one_worker_do_not_outvote_two_workers() -> None:
    honest = [[_box("car", 100, 50, 200, 120)], [_box("car", 104, 47, 198, 125)]]
    forged = [[_box("bus", 400, 300, 80, 60)]] * 3  # one worker id, three answers
    document = _as(
        _document([*honest, *forged]),
        ["honest-1", "honest-2", "forger", "forger", "forger"],
        [_at(0), _at(1), _at(2), _at(3), _at(4)],
    )
    result = Converter(_labels(VOC, minAgreement=0.5)).convert(document)
    assert isinstance(result, Converted), result
    assert _annotations(result) == [
        {"class_id": VOC.index("car"), "width": 199, "top": 49, "height": 123, "left": 102}
    ]
    metadata = _metadata(result)
    assert metadata["objects"] == [{"confidence": 0.67}]  # 2 of 3 distinct workers
    assert metadata["worker-count"] == 3
    assert metadata["agreeing-workers"] == 2
    assert metadata["agreement"] == pytest.approx(2 / 3, abs=1e-4)
    assert {score.worker: score.agreement for score in result.workers} == {
        worker_hash("honest-1"): 1.0,
        worker_hash("honest-2"): 1.0,
        worker_hash("forger"): 0.0,
    }


def test_a_worker_who_answered_twice_counts_once_with_its_newest_answer() -> None:
    car, elsewhere = _box("car", 100, 50, 200, 120), _box("car", 400, 300, 80, 60)
    # w0's newest answer comes first in the output; its older one (drawn elsewhere) last.
    document = _as(
        _document([[car], [car], [elsewhere]]),
        ["w0", "w1", "w0"],
        [_at(5), _at(1), _at(0)],
    )
    result = Converter(_labels(VOC, minAgreement=1.0)).convert(document)
    assert isinstance(result, Converted), result
    assert _annotations(result) == [
        {"class_id": VOC.index("car"), "width": 200, "top": 50, "height": 120, "left": 100}
    ]
    metadata = _metadata(result)
    assert metadata["objects"] == [{"confidence": 1}]
    assert metadata["worker-count"] == 2
    assert metadata["agreeing-workers"] == 2
    assert metadata["creation-date"] == _at(5)
    assert sorted(score.worker for score in result.workers) == sorted(
        [worker_hash("w0"), worker_hash("w1")]
    )
    # Had w0's newest answer been the one drawn elsewhere, the two workers disagree.
    document = _as(document, ["w0", "w1", "w0"], [_at(0), _at(1), _at(5)])
    result = Converter(_labels(VOC, minAgreement=1.0)).convert(document)
    assert isinstance(result, Quarantined)
    assert result.reason is QuarantineReason.WORKERS_DISAGREE


def test_one_distinct_worker_writes_the_one_answer_line_of_its_newest_answer() -> None:
    boxes = [[_box("car", 10, 10, 50, 50)], [_box("bus", 300, 300, 50, 50)], [], []]
    document = _as(_document(boxes), ["w0"] * 4, [_at(1), _at(7), _at(3), _at(7)])
    result = Converter(_labels(VOC)).convert(document)
    assert isinstance(result, Converted), result
    assert result.line == _seed_line(document, 1)  # newest; of equals, the first
    assert result.workers == ()


def test_answers_without_a_worker_id_count_as_one_anonymous_worker() -> None:
    honest = [[_box("car", 100, 50, 200, 120)], [_box("car", 104, 47, 198, 125)]]
    anonymous = [[_box("bus", 400, 300, 80, 60)]] * 3
    document = _as(
        _document([*honest, *anonymous]),
        ["honest-1", "honest-2", None, "", None],  # a missing or empty id: anonymous
        [_at(0), _at(1), _at(2), _at(3), _at(4)],
    )
    result = Converter(_labels(VOC, minAgreement=0.5)).convert(document)
    assert isinstance(result, Converted), result
    assert [box["class_id"] for box in _annotations(result)] == [VOC.index("car")]
    metadata = _metadata(result)
    assert metadata["objects"] == [{"confidence": 0.67}]
    assert metadata["worker-count"] == 3
    assert metadata["agreeing-workers"] == 2
    # The anonymous worker counts, but has no name to score as a reviewer.
    assert sorted(score.worker for score in result.workers) == sorted(
        [worker_hash("honest-1"), worker_hash("honest-2")]
    )
    # Only anonymous answers: one worker, the one-answer line of the newest.
    alone = _as(_document(anonymous), [None, "", None], [_at(2), _at(4), _at(3)])
    result = Converter(_labels(VOC)).convert(alone)
    assert isinstance(result, Converted), result
    assert result.line == _seed_line(alone, 1)


@pytest.mark.parametrize(("min_agreement", "agreeing"), [(0.5, 3), (0.6, 2)])
def test_agreeing_workers_counts_those_who_reach_min_agreement(
    min_agreement: float, agreeing: int
) -> None:
    car, bus = _box("car", 10, 10, 50, 50), _box("bus", 300, 300, 50, 50)
    # The third worker missed the bus: agreement 1/2 with the two kept boxes.
    document = _document([[car, bus], [car, bus], [car]])
    result = Converter(_labels(VOC, minAgreement=min_agreement)).convert(document)
    assert isinstance(result, Converted), result
    metadata = _metadata(result)
    assert metadata["objects"] == [{"confidence": 1}, {"confidence": 0.67}]
    assert metadata["worker-count"] == 3
    assert metadata["agreeing-workers"] == agreeing
    assert metadata["agreement"] == pytest.approx(2.5 / 3, abs=1e-4)
    assert sorted(score.agreement for score in result.workers) == [0.5, 1.0, 1.0]


@PROPERTY
@given(case=jittered_workers(), data=st.data())
def test_an_older_answer_of_a_worker_never_changes_the_result(
    case: tuple[list[str], dict[str, Any], dict[str, float]], data: st.DataObject
) -> None:
    classes, document, knobs = case
    converter = Converter(_labels(classes, **knobs))
    first = converter.convert(document)
    answers = document["humanAnswers"]
    worker = data.draw(st.sampled_from(answers))
    content = data.draw(st.sampled_from(answers))  # its own boxes, or another worker's
    duplicate = {
        **copy.deepcopy(content),
        "workerId": worker["workerId"],
        "submissionTime": f"2026-11-29T09:{data.draw(st.integers(0, 59)):02d}:00.000Z",
    }
    forged = copy.deepcopy(document)
    forged["humanAnswers"].insert(data.draw(st.integers(0, len(answers))), duplicate)
    second = converter.convert(forged)
    assert type(first) is type(second)
    if isinstance(first, Converted):
        assert isinstance(second, Converted)
        assert first.line == second.line
        assert first.workers == second.workers
        assert first.dropped == second.dropped
    else:
        assert isinstance(second, Quarantined)
        assert (first.reason, first.detail) == (second.reason, second.detail)


# -- provenance ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("task_object", "accepted"),
    [
        ("s3://images/voc/0001.jpg", True),
        ("s3://images/0001.jpg", False),  # outside the folder
        ("s3://images-evil/voc/0001.jpg", False),  # a bucket that only starts alike
        ("s3://other-tenant/voc/0001.jpg", False),
        ("s3://images/voc2/0001.jpg", False),
    ],
)
def test_an_image_outside_the_allow_list_is_foreign(task_object: str, accepted: bool) -> None:
    document = _document([[_box("car", 10, 10, 50, 50)]])
    document["inputContent"]["taskObject"] = task_object
    labels = LabelsSpec(classes=VOC, image_s3_prefixes=["s3://images/voc", "s3://more/x/"])
    result = Converter(labels).convert(document)
    if accepted:
        assert isinstance(result, Converted)
    else:
        assert isinstance(result, Quarantined)
        assert result.reason is QuarantineReason.FOREIGN_IMAGE


def test_quarantine_records_drop_identity_data_even_when_not_json() -> None:
    raw = b'{"workerMetadata": {"identityData": {"sub": "secret-subject"}}, oops'
    item = Quarantined(QuarantineReason.INVALID_JSON, "not JSON")
    text = quarantine_record(item, raw, at=__import__("datetime").datetime.now()).decode()
    assert "secret-subject" not in text
    raw_latin = raw.replace(b"oops", b"\xff")
    text = quarantine_record(item, raw_latin, at=__import__("datetime").datetime.now()).decode()
    assert "rawBase64" in text
    assert b"secret-subject" not in __import__("base64").b64decode(json.loads(text)["rawBase64"])


def test_a_hostile_flood_of_boxes_is_quarantined_quickly() -> None:
    import time

    from retraining_operator.manifest.convert import MAX_CONSENSUS_BOXES

    flood = [_box("car", i % 600, i % 400, 30, 30) for i in range(20_000)]
    document = _document([flood, flood, flood])
    started = time.monotonic()
    result = Converter(_labels(VOC)).convert(document)
    assert isinstance(result, Quarantined)
    assert result.reason is QuarantineReason.INVALID_FIELD
    assert str(MAX_CONSENSUS_BOXES) in result.detail
    assert time.monotonic() - started < 5
    # At the bound, consolidation itself stays fast (pairwise IoU of 600 boxes).
    per_worker = MAX_CONSENSUS_BOXES // 3
    boxes = [_box("car", (i * 7) % 600, (i * 3) % 400, 30, 30) for i in range(per_worker)]
    started = time.monotonic()
    bounded = Converter(_labels(VOC)).convert(_document([boxes, boxes, boxes]))
    elapsed = time.monotonic() - started
    assert isinstance(bounded, Converted | Quarantined)
    assert elapsed < 5, elapsed
