"""`retraining-operator manifest` on a local directory and on an S3 prefix (the S3 stand-in)."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest

from retraining_operator.cli import main
from retraining_standins.a2i import FlowDefinition
from retraining_standins.seed import a2i_output_uri, random_a2i_output
from retraining_standins.stack import AwsStandins
from unit.ingest_policies import VOC
from unit.seed_oracle import make_seed_converter

FLOW_ARN = "arn:aws:sagemaker:us-east-1:123456789012:flow-definition/fd-local"


def _output(name: str) -> dict[str, Any]:
    return random_a2i_output(
        flow_definition_arn=FLOW_ARN,
        human_loop_name=name,
        task_object=f"s3://images/{name}.jpg",
        classes=VOC,
        rng=random.Random(name),
    )


def _write(root: Path, name: str, body: bytes, second: int) -> Path:
    from datetime import UTC, datetime

    created = datetime(2026, 5, 1, 10, 0, second, tzinfo=UTC)
    uri = a2i_output_uri(f"s3://x/{root.name}", "fd-local", name, created)
    path = root.parent / uri.removeprefix("s3://x/")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(body)
    return path


def test_local_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "a2i-results"
    names = ["loop-c", "loop-a", "loop-d", "loop-b"]
    documents = {name: _output(name) for name in names}
    for second, name in enumerate(names):
        _write(root, name, json.dumps(documents[name]).encode(), second)
    broken = _write(root, "loop-broken", b'{"humanLoopName": "loop-broken", ', 30)
    unknown = _output("loop-unknown")
    unknown["humanAnswers"][0]["answerContent"]["annotatedResult"]["boundingBoxes"].append(
        {"label": "unicorn", "left": 0, "top": 0, "width": 1, "height": 1}
    )
    unknown_path = _write(root, "loop-unknown", json.dumps(unknown).encode(), 31)
    duplicate = _write(root, "loop-a", json.dumps(documents["loop-a"]).encode(), 59)
    classes = tmp_path / "classes.txt"
    classes.write_text("# PASCAL VOC\n" + "\n".join(VOC) + "\n")
    out = tmp_path / "out" / "augmented.manifest"

    code = main(
        [
            "manifest",
            "--input", str(root),
            "--classes-file", str(classes),
            "--attribute-name", "a2i-retraining",
            "--output", str(out),
        ]
    )  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2, err  # some inputs quarantined, every good line written
    oracle = make_seed_converter(VOC)
    lines = out.read_text().splitlines()
    assert lines == [json.dumps(oracle(documents[name])) for name in sorted(names)]
    assert f"quarantined: {broken} (loop loop-broken): InvalidJson:" in err
    assert f"quarantined: {unknown_path} (loop loop-unknown): UnknownLabel:" in err
    assert f"quarantined: {duplicate} (loop loop-a): DuplicateLoop:" in err
    assert "wrote 4 lines" in err


def test_drop_mode_and_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "in"
    unknown = _output("loop-x")
    boxes = unknown["humanAnswers"][0]["answerContent"]["annotatedResult"]["boundingBoxes"]
    boxes.insert(0, {"label": "unicorn", "left": 0, "top": 0, "width": 1, "height": 1})
    path = _write(root, "loop-x", json.dumps(unknown).encode(), 1)
    out = tmp_path / "drop.manifest"
    args = ["manifest", "--input", str(root), "--classes", ",".join(VOC), "--output", str(out)]
    assert main([*args, "--unknown-label", "Drop"]) == 0
    err = capsys.readouterr().err
    assert f"dropped box: {path} (loop loop-x): boundingBoxes[0] label 'unicorn'" in err
    (line,) = out.read_text().splitlines()
    assert len(json.loads(line)["a2i-retraining"]["annotations"]) == len(boxes) - 1

    out.unlink()
    assert main(args) == 1  # the only input is quarantined: nothing written
    assert not out.exists()
    assert "nothing written" in capsys.readouterr().err
    assert main([*args[:2], str(tmp_path / "nowhere"), *args[3:]]) == 1
    assert "does not exist" in capsys.readouterr().err
    bad = ["manifest", "--input", str(root), "--classes", "cat,cat", "--output", str(out)]
    assert main(bad) == 1
    assert "must not repeat" in capsys.readouterr().err


def test_s3_prefix_to_s3_object(
    aws: AwsStandins, a2i_flow: FlowDefinition, capsys: pytest.CaptureFixture[str]
) -> None:
    loops = aws.a2i.add_loops(a2i_flow, 6)
    bad = aws.a2i.add_loop(a2i_flow, "loop-bad", output=b"not json at all")
    target = "s3://rtp-test-bucket/cli/augmented.manifest"
    code = main(
        [
            "manifest",
            "--input", f"{a2i_flow.output_path}/",
            "--classes", ",".join(VOC),
            "--attribute-name", "od",
            "--output", target,
        ]
    )  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2, err
    body = aws.get_object(target)
    assert body is not None
    lines = [json.loads(line) for line in body.decode().splitlines()]
    assert [line["od-metadata"]["job-name"] for line in lines] == [
        f"a2i/{name}" for name in sorted(loop.name for loop in loops)
    ]
    for line in lines:
        source = aws.get_object(
            a2i_output_uri(
                a2i_flow.output_path,
                a2i_flow.name,
                line["od-metadata"]["job-name"][4:],
                aws.a2i.loop(line["od-metadata"]["job-name"][4:]).created,
            )
        )
        assert source is not None
        assert line == make_seed_converter(VOC, "od")(json.loads(source))
    assert f"quarantined: {bad.output_uri} (loop loop-bad): InvalidJson:" in err


def test_hostile_inputs_are_listed_and_the_rest_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "in"
    names = ["loop-a", "loop-b", "loop-c"]
    documents = {name: _output(name) for name in names}
    for second, name in enumerate(names):
        _write(root, name, json.dumps(documents[name]).encode(), second)
    depth = 100_000
    deep = _write(
        root, "loop-deep", b'{"humanLoopName": "loop-deep", "x": ' + b"[" * depth + b"}", 10
    )
    big = json.dumps(_output("loop-big")).replace('"width": ', '"width": ' + "7" * 5000, 1)
    big_path = _write(root, "loop-big", big.encode(), 11)
    out = tmp_path / "out.manifest"
    args = ["manifest", "--input", str(root), "--classes", ",".join(VOC), "--output", str(out)]

    code = main(args)
    err = capsys.readouterr().err
    assert code == 2, err
    oracle = make_seed_converter(VOC)
    assert out.read_text().splitlines() == [json.dumps(oracle(documents[n])) for n in names]
    assert f"quarantined: {deep} (loop loop-deep): TooDeep:" in err
    assert f"quarantined: {big_path} (loop loop-big): NumberTooLarge:" in err
    assert "Traceback" not in err
    assert "wrote 3 lines" in err
    # Only good inputs: 0.
    deep.unlink()
    big_path.unlink()
    assert main(args) == 0


def test_help_documents_the_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main(["manifest", "--help"])
    assert done.value.code == 0
    help_text = capsys.readouterr().out
    assert "0  every input became a manifest line" in help_text
    assert "2  some inputs were quarantined" in help_text
    assert "1  nothing could be done" in help_text
    with pytest.raises(SystemExit) as done:
        main(["manifest", "--input", "x"])  # a usage error is "nothing could be done"
    assert done.value.code == 1


def test_consensus_and_image_prefix_options(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "a2i-results"
    documents = {}
    for second, name in enumerate(["loop-a", "loop-b", "loop-c", "loop-d"]):
        documents[name] = random_a2i_output(
            flow_definition_arn=FLOW_ARN,
            human_loop_name=name,
            task_object=f"s3://images/{name}.jpg",
            classes=VOC,
            rng=random.Random(name),
            workers=3,
            disagreement=0.0,  # no misses or relabels: jitter only
        )
        _write(root, name, json.dumps(documents[name]).encode(), second)
    foreign = random_a2i_output(
        flow_definition_arn=FLOW_ARN,
        human_loop_name="loop-foreign",
        task_object="s3://other-tenant/secret.jpg",
        classes=VOC,
        rng=random.Random(7),
    )
    _write(root, "loop-foreign", json.dumps(foreign).encode(), 40)
    out = tmp_path / "consensus.manifest"
    args = [
        "manifest", "--input", str(root), "--classes", ",".join(VOC), "--output", str(out),
        "--consolidation", "Consensus", "--iou-threshold", "0.5", "--min-agreement", "0.6",
        "--image-prefix", "s3://images",
    ]  # fmt: skip
    code = main(args)
    err = capsys.readouterr().err
    assert code == 2, err
    assert "(loop loop-foreign): ForeignImage:" in err
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [line["source-ref"] for line in lines] == [
        f"s3://images/{name}.jpg" for name in sorted(documents)
    ]
    for line in lines:
        metadata = line["a2i-retraining-metadata"]
        assert metadata["worker-count"] == 3
        # A tiny box may lose one reviewer to the jitter; most are drawn by all three.
        assert {obj["confidence"] for obj in metadata["objects"]} <= {0.67, 1}
    assert err.count("reviewer w") == 10  # the 10 least agreeing of 12, named by hash
    for document in documents.values():
        for answer in document["humanAnswers"]:
            assert answer["workerId"] not in err

    assert main([*args[:-2], "--iou-threshold", "7"]) == 1
    assert "iouThreshold" in capsys.readouterr().err
    assert main([*args[:7], "--consolidation", "First", "--min-agreement", "0.5"]) == 1
    assert "only apply to --consolidation Consensus" in capsys.readouterr().err
