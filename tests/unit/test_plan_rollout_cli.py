"""`retraining-operator plan rollout`: the rollout's requests as one JSON object, no AWS calls."""

from __future__ import annotations

import json
from pathlib import Path

import botocore.session
import pytest
import yaml
from botocore.validate import ParamValidator

from retraining_operator.cli import main
from retraining_operator.reconcile.naming import PolicyRef
from retraining_operator.reconcile.rollout.requests import RolloutNames
from unit.rollout_policies import CURRENT_CONFIG_FILE, IMAGE, PASCAL, document

SAGEMAKER = botocore.session.get_session().get_service_model("sagemaker")
MODEL_DATA = "s3://my-bucket/a2i-results/incremental-training/tj/output/model.tar.gz"
RUN = "r20261124-220500"


def args(policy: Path = PASCAL, *extra: str) -> list[str]:
    return [
        "plan", "rollout", "--policy", str(policy), "--model-data", MODEL_DATA,
        "--current-endpoint-config", str(CURRENT_CONFIG_FILE), "--run-id", RUN, *extra,
    ]  # fmt: skip


@pytest.fixture(autouse=True)
def no_aws(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any AWS call would need an endpoint; point them all at a closed port."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "none")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "none")


def test_prints_the_three_requests_valid_for_sagemaker(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(args()) == 0
    out = json.loads(capsys.readouterr().out)
    assert list(out) == ["CreateModel", "CreateEndpointConfig", "UpdateEndpoint"]
    for operation, request in out.items():
        shape = SAGEMAKER.operation_model(operation).input_shape
        report = ParamValidator().validate(request, shape)
        assert not report.has_errors(), report.generate_report()
    names = RolloutNames.for_run(PolicyRef.without_uid("vision", "pascal-detector"), RUN)
    assert out["CreateModel"]["ModelName"] == names.model
    assert out["CreateModel"]["PrimaryContainer"] == {"Image": IMAGE, "ModelDataUrl": MODEL_DATA}
    assert out["CreateEndpointConfig"]["ProductionVariants"][0]["ModelName"] == names.model
    assert out["UpdateEndpoint"]["EndpointConfigName"] == names.config
    routing = out["UpdateEndpoint"]["DeploymentConfig"]["BlueGreenUpdatePolicy"][
        "TrafficRoutingConfiguration"
    ]
    assert routing["Type"] == "CANARY"


def test_image_override_and_tags(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tags = tmp_path / "tags.json"
    tags.write_text(json.dumps({"Tags": [{"Key": "team", "Value": "vision"}]}))
    custom = "123456789012.dkr.ecr.us-east-1.amazonaws.com/my-detector:2"
    assert main(args(PASCAL, "--image", custom, "--current-tags", str(tags))) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["CreateModel"]["PrimaryContainer"]["Image"] == custom
    assert {"Key": "team", "Value": "vision"} in out["CreateEndpointConfig"]["Tags"]


def test_metadata_uid_names_the_resources(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    doc = document()
    doc["metadata"]["uid"] = "0b1c2d3e-uid"
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump(doc))
    assert main(args(path)) == 0
    out = json.loads(capsys.readouterr().out)
    names = RolloutNames.for_run(PolicyRef("vision", "pascal-detector", "0b1c2d3e-uid"), RUN)
    assert out["CreateModel"]["ModelName"] == names.model


def test_variant_shift_prints_the_two_variant_config(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    doc = document()
    doc["spec"]["deployment"].pop("blueGreen")
    doc["spec"]["deployment"]["strategy"] = "VariantShift"
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump(doc))
    assert main(args(path)) == 0
    captured = capsys.readouterr()
    out = json.loads(captured.out)
    assert [v["VariantName"] for v in out["CreateEndpointConfig"]["ProductionVariants"]] == [
        "AllTraffic", "Experimental", "AllTraffic-alt",
    ]  # fmt: skip
    assert "DeploymentConfig" not in out["UpdateEndpoint"]
    assert "VariantShift" in captured.err


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"model": "/tmp/model.tar.gz"}, "is not an s3:// URI"),
        ({"config": "not json"}, "is not valid JSON"),
        ({"config": '{"Foo": 1}'}, "DescribeEndpointConfig answer"),
        ({"strategy": "None"}, "strategy is None"),
        ({"variant": "Blue"}, "no production variant 'Blue'"),
    ],
)
def test_bad_input_exits_2_with_a_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], change: dict[str, str], message: str
) -> None:
    doc = document()
    if "strategy" in change:
        doc["spec"]["deployment"].pop("blueGreen")
        doc["spec"]["deployment"]["strategy"] = change["strategy"]
    if "variant" in change:
        doc["spec"]["deployment"]["variantName"] = change["variant"]
    policy = tmp_path / "policy.yaml"
    policy.write_text(yaml.safe_dump(doc))
    config = CURRENT_CONFIG_FILE
    if "config" in change:
        config = tmp_path / "config.json"
        config.write_text(change["config"])
    argv = [
        "plan", "rollout", "--policy", str(policy),
        "--model-data", change.get("model", MODEL_DATA),
        "--current-endpoint-config", str(config),
    ]  # fmt: skip
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert message in captured.err
    assert captured.out == ""
