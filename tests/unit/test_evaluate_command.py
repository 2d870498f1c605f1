"""`retraining-operator evaluate`: the gate's mAP over files, with manifest-like exit codes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from retraining_operator.cli import main


def manifest_line(ref: str, boxes: list[tuple[int, float, float, float, float]]) -> dict[str, Any]:
    return {
        "source-ref": ref,
        "od": {
            "annotations": [
                {"class_id": c, "left": x, "top": y, "width": w, "height": h}
                for c, x, y, w, h in boxes
            ],
            "image_size": [{"width": 200, "height": 100, "depth": 3}],
        },
        "od-metadata": {"class-map": {"0": "cat", "1": "dog"}, "human-annotated": "yes"},
    }


def write(path: Path, lines: list[Any]) -> Path:
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


def normalized(x: float, y: float, w: float, h: float) -> list[float]:
    return [x / 200, y / 100, (x + w) / 200, (y + h) / 100]


@pytest.fixture
def truth(tmp_path: Path) -> Path:
    return write(tmp_path / "truth.jsonl", [
        manifest_line("s3://b/1.jpg", [(0, 10, 10, 50, 40), (1, 100, 20, 60, 60)]),
        manifest_line("s3://b/2.jpg", [(1, 20, 20, 40, 40)]),
        manifest_line("s3://b/3.jpg", []),
    ])  # fmt: skip


def test_scores_as_json(truth: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    predictions = write(tmp_path / "p.jsonl", [
        {"source-ref": "s3://b/1.jpg", "prediction": [
            [0, 0.9, *normalized(10, 10, 50, 40)], [1, 0.8, *normalized(100, 20, 60, 60)]]},
        {"source-ref": "s3://b/2.jpg", "prediction": [[1, 0.7, *normalized(150, 60, 40, 30)]]},
        {"source-ref": "s3://b/3.jpg", "prediction": [[0, 0.2, 0.1, 0.1, 0.2, 0.2]]},
    ])  # fmt: skip
    code = main(
        ["evaluate", "--ground-truth", str(truth), "--predictions", str(predictions), "--json"]
    )
    out = json.loads(capsys.readouterr().out)
    assert code == 0
    assert out["images"] == 3
    assert out["perClass"]["0"] == pytest.approx(1.0)
    # dog: one of two boxes found, at the highest-scored dog detection: AP = 51/101
    assert out["perClass"]["1"] == pytest.approx(51 / 101)
    assert out["mAP"] == pytest.approx((1.0 + 51 / 101) / 2)
    assert out["groundTruthBoxes"] == {"0": 1, "1": 2}


def test_refused_lines_and_images_without_prediction_exit_2(
    truth: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    predictions = tmp_path / "p.jsonl"
    predictions.write_text(
        json.dumps({"source-ref": "s3://b/1.jpg", "prediction": [[0, "x", 0, 0, 1, 1]]})
        + "\nnot json\n"
        + json.dumps({"source-ref": "s3://b/9.jpg", "prediction": []})
        + "\n"
    )
    code = main(["evaluate", "--ground-truth", str(truth), "--predictions", str(predictions)])
    captured = capsys.readouterr()
    assert code == 2
    assert "mAP@0.5 0.0000 over 3 images, 2 classes" in captured.out
    assert "p.jsonl:2: not a prediction line" in captured.err
    assert "s3://b/2.jpg: no prediction" in captured.err
    assert "s3://b/9.jpg: not a held-out image" in captured.err
    assert r"prediction[0][1] is not a number" in captured.err
    assert "Traceback" not in captured.err


def test_nothing_to_score_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    empty = write(tmp_path / "t.jsonl", [{"source-ref": "s3://b/1.jpg"}])
    code = main(["evaluate", "--ground-truth", str(empty), "--predictions", str(empty)])
    assert code == 1
    assert "no label attribute" in capsys.readouterr().err
    code = main(["evaluate", "--ground-truth", str(tmp_path / "missing"), "--predictions", "x"])
    assert code == 1
    assert "cannot read" in capsys.readouterr().err
