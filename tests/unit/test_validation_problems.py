"""Validation problems in words: the CLI and the CRD refuse a value with the same sentence,
one line per problem naming the field, never a regex, a traceback or a library's web link."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from retraining_operator.api import RetrainingPolicySpec
from retraining_operator.api.problems import FORMS, problem_lines, s3_uri_problem
from retraining_operator.cli import main
from support import crdschema
from unit.rollout_policies import PASCAL

SCHEMA = crdschema.version_schema(crdschema.load_crd())
FORMAT_RULE = re.compile(r"^self\.matches\(r'(?P<pattern>.*)'\)$")
RUN = "r20261124-220500"
MODEL_DATA = "s3://my-bucket/a2i-results/incremental-training/tj/output/model.tar.gz"


def _spec(**changes: object) -> dict[str, object]:
    document = yaml.safe_load(PASCAL.read_text())
    spec: dict[str, object] = document["spec"]
    for path, value in changes.items():
        node: dict[str, object] = spec
        *parents, leaf = path.split("__")
        for part in parents:
            node = node.setdefault(part, {})  # type: ignore[assignment]
        node[leaf] = value
    return spec


def _problems(spec: dict[str, object]) -> list[str]:
    with pytest.raises(ValidationError) as caught:
        RetrainingPolicySpec.model_validate(spec)
    return problem_lines(caught.value, prefix="spec")


def test_every_crd_format_rule_says_what_the_cli_says() -> None:
    checked = 0
    for path, node in crdschema.walk(SCHEMA):
        for rule in node.get("x-kubernetes-validations", []):
            match = FORMAT_RULE.match(rule["rule"])
            if match:
                form = FORMS[match.group("pattern")]
                assert f"must be {form}, not" in rule["messageExpression"], path
                checked += 1
    assert checked >= 40


@pytest.mark.parametrize(
    ("changes", "line"),
    [
        (
            {"humanLoops__pollInterval": "5"},
            "spec.humanLoops.pollInterval: must be a duration such as 30s, 5m or 1h30m "
            '(units ms, s, m, h), not "5"',
        ),
        (
            {"deployment__endpointName": "my_endpoint"},
            "spec.deployment.endpointName: must be a SageMaker name: 1-63 letters, digits and "
            'hyphens, starting and ending with a letter or digit, not "my_endpoint"',
        ),
        (
            {"dataset__outputS3Uri": "s3://b/a2i-results"},
            "spec.dataset.outputS3Uri: must be an s3://bucket/key URI whose bucket name is 3-63 "
            'lowercase letters, digits, dots and hyphens, not "s3://b/a2i-results"',
        ),
        (
            {"gate__minimum": 50},
            "spec.gate: gate.minimum must be at most 1 for a mAP metric (0.5 means 50 %)",
        ),
        (
            {"training__hyperParameters": {"learning_rate": 0.0001}},
            "spec.training.hyperParameters.learning_rate: Input should be a valid string",
        ),
    ],
    ids=["duration", "endpoint-name", "short-bucket", "gate-floor", "hyperparameter"],
)
def test_one_line_per_problem_naming_the_field(changes: dict[str, object], line: str) -> None:
    lines = _problems(_spec(**changes))
    assert lines == [line]


def test_no_regex_and_no_web_link_in_any_line() -> None:
    lines = _problems(_spec(humanLoops__pollInterval="5", aws__region="Mars", gate__minimum=-0.5))
    assert len(lines) == 3, lines
    for text in lines:
        assert "errors.pydantic.dev" not in text
        assert "^" not in text, text
        assert "$'" not in text, text


def test_s3_uri_problems_say_what_is_wrong() -> None:
    assert s3_uri_problem("s3://my-bucket/key") is None
    assert "bucket name 'b'" in str(s3_uri_problem("s3://b/key"))
    assert "is not an s3:// URI" in str(s3_uri_problem("https://my-bucket/key"))
    assert "names no bucket" in str(s3_uri_problem("s3:///key"))


def test_the_cli_prints_the_lines_and_no_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    document = yaml.safe_load(PASCAL.read_text())
    document["spec"]["humanLoops"]["pollInterval"] = "5"
    document["spec"]["gate"] = {"minimum": 50}
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(document))
    code = main(
        ["plan", "rollout", "--policy", str(bad), "--model-data", MODEL_DATA, "--first-deployment"]
    )
    err = capsys.readouterr().err
    assert code == 2
    assert "spec.humanLoops.pollInterval: must be a duration such as 30s" in err
    assert "spec.gate: gate.minimum must be at most 1" in err
    assert "Traceback" not in err
    assert "pydantic" not in err


def test_model_data_with_a_short_bucket_names_the_bucket(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = main(
        ["plan", "rollout", "--policy", str(PASCAL), "--model-data", "s3://b/m.tar.gz",
         "--first-deployment"]
    )  # fmt: skip
    assert code == 2
    assert "bucket name 'b'" in capsys.readouterr().err


def test_plan_rollout_plans_a_first_deployment(capsys: pytest.CaptureFixture[str]) -> None:
    from retraining_operator.commands.plan import load_policy
    from retraining_operator.reconcile.rollout.plan import plan_rollout
    from retraining_operator.reconcile.rollout.requests import ModelSource

    assert main(
        ["plan", "rollout", "--policy", str(PASCAL), "--model-data", MODEL_DATA,
         "--first-deployment", "--run-id", RUN]
    ) == 0  # fmt: skip
    out = json.loads(capsys.readouterr().out)
    assert list(out) == ["CreateModel", "CreateEndpointConfig", "CreateEndpoint"]
    policy, spec = load_policy(str(PASCAL))
    image = out["CreateModel"]["PrimaryContainer"]["Image"]
    expected = plan_rollout(
        policy, spec, run_id=RUN, source=ModelSource(MODEL_DATA, image), live=None
    ).to_json()
    assert out == json.loads(json.dumps(expected))
    assert len(out["CreateEndpointConfig"]["ProductionVariants"]) == 1


def test_first_deployment_refuses_live_state_flags(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = tmp_path / "model.json"
    model.write_text("{}")
    code = main(
        ["plan", "rollout", "--policy", str(PASCAL), "--model-data", MODEL_DATA,
         "--first-deployment", "--current-model", str(model)]
    )  # fmt: skip
    assert code == 2
    assert "--current-model describes a live endpoint" in capsys.readouterr().err


def test_a_closed_pipe_ends_quietly() -> None:
    script = (
        "import sys; from retraining_operator.cli import main; "
        f"sys.exit(main(['plan', 'rollout', '--policy', {str(PASCAL)!r}, '--model-data', "
        f"{MODEL_DATA!r}, '--first-deployment', '--run-id', {RUN!r}]))"
    )
    # `| head -c 1`: the reader takes one byte and leaves; the JSON is far larger than a pipe
    # buffer only with indentation, so read nothing at all: close the pipe first.
    reader = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert reader.stdout is not None
    assert reader.stderr is not None
    reader.stdout.close()
    err = reader.stderr.read().decode()
    assert reader.wait(timeout=60) == 0, err
    assert "Traceback" not in err, err
    assert "BrokenPipeError" not in err, err
