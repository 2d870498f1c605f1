"""docs/a2i-setup.md cannot rot: its `sh` blocks run, in order, in bash, against a fake `aws`
that parses every command as the AWS CLI does (options named after the API's members,
`file://`, `--cli-input-yaml`, `--query`) and validates the request against botocore's
service model with the constraints the services enforce (patterns, lengths, enums:
retraining_standins.validation); the real `retraining-operator iam-policy` and `manifest`
run on what the guide made. Then the resources are checked against each other and against
what the operator reads: the template's `crowd-bounding-box` answers under the key the
converter reads, with the policy's classes; the flow definition writes under the policy's
dataset.outputS3Uri; the roles allow what A2I and SageMaker do with them; the inference
code's `StartHumanLoop` is a valid request whose `taskObject` the template shows; the sample
`output.json` converts to a manifest line.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import boto3
import botocore.session
import pytest
import yaml
from botocore.stub import ANY, Stubber

from retraining_operator.api import RetrainingPolicySpec
from retraining_operator.manifest.convert import Converted, Converter
from retraining_operator.reconcile import execution_role
from retraining_standins.validation import validate_params
from support.iamcheck import Request, allows

REPO = Path(__file__).resolve().parents[2]
GUIDE = REPO / "docs" / "a2i-setup.md"
BIN = Path(sys.executable).parent
ACCOUNT = "111122223333"
REGION = "us-east-1"

# The fake AWS CLI: argv -> one validated request (logged), a sample response -> --query.
FAKE_AWS = r"""
import json, os, sys
from pathlib import Path

import botocore.session
import jmespath
import yaml
from botocore import xform_name

from retraining_standins.validation import validate_params

ACCOUNT = "111122223333"
REGION = os.environ.get("AWS_REGION", "us-east-1")
SAMPLES = {
    "Account": ACCOUNT,
    "Id": "us-east-1_AbCdEf123",
    "ClientId": "4example5client6id7",
    "SubDomain": "abc123xyz.labeling.us-east-1.sagemaker.aws",
    "ModelDataUrl": "s3://models-before/od/model.tar.gz",
    "OutputS3Uri": "s3://my-bucket/a2i-results/fd-voc-detector/2026/12/08/09/14/00/voc-first-try/output.json",
    "FlowDefinitionStatus": "Active",
    "EndpointConfigName": "od-endpoint-config-v0",
    "ModelName": "od-model-v0",
}
KINDS = {"Workteam": "workteam/private-crowd"}


def read(value):
    return Path(value[len("file://"):]).read_text() if value.startswith("file://") else value


def convert(text, shape):
    kind = shape.type_name
    if kind == "string":
        return text
    if kind in ("integer", "long"):
        return int(text)
    if kind == "boolean":
        return text == "true"
    if text.lstrip()[:1] in "{[":
        return json.loads(text)
    pairs = dict(pair.split("=", 1) for pair in text.split(","))  # shorthand: k=v,k=v
    return [pairs] if kind == "list" else pairs


def arn(name, parent, service, params):
    if service == "iam":
        return f"arn:aws:iam::{ACCOUNT}:role/{params.get('RoleName', 'sample')}"
    base = name[:-3] or parent
    kind = KINDS.get(base, xform_name(base, "-"))
    own = next((v for k, v in params.items() if k.endswith("Name") and isinstance(v, str)), "x")
    return f"arn:aws:{service}:{REGION}:{ACCOUNT}:{kind}/{own.lower()}"


def sample(shape, name, parent, service, params, depth=0):
    kind = shape.type_name
    if kind == "structure":
        if depth > 6:
            return {}
        return {m: sample(s, m, name, service, params, depth + 1) for m, s in shape.members.items()}
    if kind == "list":
        return [sample(shape.member, name, parent, service, params, depth + 1)]
    if kind == "map":
        return {}
    if kind == "string":
        if name.endswith("Arn"):
            return arn(name, parent, service, params)
        return SAMPLES.get(name, shape.enum[0] if shape.enum else "sample")
    return {"boolean": True, "timestamp": "2026-12-08T09:00:00Z"}.get(kind, 1)


def main(argv):
    service, command, *rest = argv
    log = Path(os.environ["FAKE_AWS_LOG"])
    if service == "s3":
        assert command == "cp" and rest[0].startswith("s3://"), argv
        Path(rest[1]).write_text(Path(os.environ["FAKE_AWS_S3_OBJECT"]).read_text())
        with log.open("a") as out:
            out.write(json.dumps({"service": "s3", "operation": "cp", "params": rest}) + "\n")
        return 0
    model = botocore.session.get_session().get_service_model(service)
    names = {xform_name(op, "-"): op for op in model.operation_names}
    operation = model.operation_model(names[command])
    shape = operation.input_shape
    members = {xform_name(m, "-"): m for m in shape.members} if shape else {}
    params, query, output, i = {}, None, "json", 0
    while i < len(rest):
        option = rest[i][2:]
        if not rest[i].startswith("--"):
            sys.exit(f"aws: unexpected argument {rest[i]!r}")
        if option in ("query", "output", "region"):
            query = rest[i + 1] if option == "query" else query
            output = rest[i + 1] if option == "output" else output
            i += 2
        elif option in ("cli-input-json", "cli-input-yaml"):
            params.update(yaml.safe_load(read(rest[i + 1])))
            i += 2
        elif option in members:
            member = shape.members[members[option]]
            flag = i + 1 == len(rest) or rest[i + 1].startswith("--")
            if member.type_name == "boolean" and flag:
                params[members[option]] = True
                i += 1
                continue
            params[members[option]] = convert(read(rest[i + 1]), member)
            i += 2
        else:
            sys.exit(f"aws {service} {command}: unknown option --{option}")
    try:
        validate_params(params, shape)
    except Exception as error:
        sys.exit(f"aws {service} {command}: {error}")
    with log.open("a") as out:
        record = {"service": service, "operation": operation.name, "params": params}
        out.write(json.dumps(record) + "\n")
    output_shape = operation.output_shape
    response = sample(output_shape, "", "", service, params) if output_shape else {}
    result = jmespath.search(query, response) if query else response
    if output == "text" and not isinstance(result, (dict, list)):
        print(result)
    elif output == "text":
        print("\t".join(map(str, result)))
    else:
        print(json.dumps(result, indent=2))
    return 0


sys.exit(main(sys.argv[1:]))
"""

# kubectl: `apply -f FILE` of a RetrainingPolicy the operator's model accepts.
FAKE_KUBECTL = r"""
import sys, yaml
from retraining_operator.api import RetrainingPolicySpec
assert sys.argv[1:3] == ["apply", "-f"], sys.argv
document = yaml.safe_load(open(sys.argv[3]))
RetrainingPolicySpec.model_validate(document["spec"])
print(f"retrainingpolicy.retraining.hitl.dev/{document['metadata']['name']} created")
"""

# retraining-operator: the real one, but `status` (no cluster here).
FAKE_OPERATOR = r"""
import sys
from retraining_operator.cli import main
sys.exit(0 if sys.argv[1:2] == ["status"] else main(sys.argv[1:]))
"""


def code_blocks(language: str) -> list[str]:
    text = GUIDE.read_text()
    return [
        m.group(2)
        for m in re.finditer(r"```(\w+)\n(.*?)```", text, re.DOTALL)
        if m.group(1) == language
    ]


def tool(directory: Path, name: str, source: str) -> None:
    path = directory / name
    path.write_text(f"#!{sys.executable}\n{source}")
    path.chmod(0o755)


@pytest.fixture(scope="module")
def ran(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The guide's shell, run once: its working directory and every AWS call it made."""
    root = tmp_path_factory.mktemp("a2i-setup")
    bin_dir, work = root / "bin", root / "work"
    bin_dir.mkdir()
    work.mkdir()
    tool(bin_dir, "aws", FAKE_AWS)
    tool(bin_dir, "kubectl", FAKE_KUBECTL)
    tool(bin_dir, "retraining-operator", FAKE_OPERATOR)
    (root / "output.json").write_text(code_blocks("json")[0])
    env = {
        "PATH": os.pathsep.join([str(bin_dir), str(BIN), "/usr/bin", "/bin"]),
        "HOME": str(root),
        "FAKE_AWS_LOG": str(root / "calls.jsonl"),
        "FAKE_AWS_S3_OBJECT": str(root / "output.json"),
        "PYTHONPATH": os.pathsep.join(sys.path),
    }
    script = "set -euo pipefail\n" + "\n".join(code_blocks("sh"))
    done = subprocess.run(
        ["bash", "-c", script], cwd=work, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stdout + done.stderr
    calls = [json.loads(line) for line in (root / "calls.jsonl").read_text().splitlines()]
    return {"work": work, "calls": calls, "stdout": done.stdout, "stderr": done.stderr}


def call(ran: dict[str, Any], operation: str, **match: str) -> dict[str, Any]:
    found = [
        c["params"]
        for c in ran["calls"]
        if c["operation"] == operation and all(c["params"].get(k) == v for k, v in match.items())
    ]
    assert len(found) == 1, (operation, match, [c["operation"] for c in ran["calls"]])
    return dict(found[0])


def policy(ran: dict[str, Any]) -> RetrainingPolicySpec:
    document = yaml.safe_load((ran["work"] / "voc-detector.yaml").read_text())
    return RetrainingPolicySpec.model_validate(document["spec"])


class _BoundingBox(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.found: list[dict[str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "crowd-bounding-box":
            self.found.append(dict(attrs))


def test_every_aws_command_is_a_valid_request_in_order(ran: dict[str, Any]) -> None:
    operations = [c["operation"] for c in ran["calls"]]
    assert operations == [
        "GetCallerIdentity",
        "CreateUserPool",
        "CreateUserPoolClient",
        "CreateUserPoolDomain",
        "CreateGroup",
        "AdminCreateUser",
        "AdminAddUserToGroup",
        "CreateWorkforce",
        "CreateWorkteam",
        "DescribeWorkteam",
        "CreateHumanTaskUi",
        "CreateRole",
        "PutRolePolicy",
        "CreateRole",
        "DescribeEndpoint",
        "DescribeEndpointConfig",
        "DescribeModel",
        "PutRolePolicy",
        "CreateFlowDefinition",
        "DescribeFlowDefinition",
        "StartHumanLoop",
        "DescribeHumanLoop",
        "cp",
    ]


def test_the_template_answers_what_the_converter_reads_with_the_policys_classes(
    ran: dict[str, Any],
) -> None:
    content = call(ran, "CreateHumanTaskUi")["UiTemplate"]["Content"]
    parser = _BoundingBox()
    parser.feed(content)
    (box,) = parser.found
    assert box["name"] == "annotatedResult"
    assert json.loads(box["labels"] or "") == policy(ran).labels.classes
    assert re.fullmatch(
        r"\{\{\s*task\.input\.taskObject\s*\|\s*grant_read_access\s*\}\}", box["src"] or ""
    )


def test_the_flow_definition_writes_under_the_policys_dataset_prefix(ran: dict[str, Any]) -> None:
    spec = policy(ran)
    flow = call(ran, "CreateFlowDefinition")
    assert flow["OutputConfig"]["S3OutputPath"] == spec.dataset.output_s3_uri
    assert spec.human_loops.flow_definition_arn == (
        f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:flow-definition/{flow['FlowDefinitionName']}"
    )
    config = flow["HumanLoopConfig"]
    ui = call(ran, "CreateHumanTaskUi")["HumanTaskUiName"]
    assert config["HumanTaskUiArn"].endswith(f":human-task-ui/{ui}")
    assert config["WorkteamArn"].endswith(f"/{call(ran, 'CreateWorkteam')['WorkteamName']}")
    assert flow["RoleArn"] == f"arn:aws:iam::{ACCOUNT}:role/a2i-voc-flow"
    assert "HumanLoopRequestSource" not in flow  # a custom task type


def test_the_flow_role_shows_the_images_and_writes_the_answers_only(ran: dict[str, Any]) -> None:
    put = call(ran, "PutRolePolicy", RoleName="a2i-voc-flow")
    document = json.loads(put["PolicyDocument"])
    trust = json.loads(call(ran, "CreateRole", RoleName="a2i-voc-flow")["AssumeRolePolicyDocument"])
    assert trust["Statement"][0]["Principal"] == {"Service": "sagemaker.amazonaws.com"}
    answer = "my-bucket/a2i-results/fd-voc-detector/2026/12/08/09/14/00/voc-first-try/output.json"
    assert allows([document], Request("s3:GetObject", "arn:aws:s3:::my-bucket/images/1.jpg"))
    assert allows([document], Request("s3:PutObject", f"arn:aws:s3:::{answer}"))
    assert not allows([document], Request("s3:PutObject", "arn:aws:s3:::my-bucket/images/1.jpg"))
    ledger = "arn:aws:s3:::my-bucket/a2i-results/ledger/head.json"
    assert not allows([document], Request("s3:PutObject", ledger))


def test_the_execution_role_gets_the_document_iam_policy_generates(ran: dict[str, Any]) -> None:
    spec = policy(ran)
    role_name = spec.training.role_arn.rsplit("/", 1)[-1]
    put = call(ran, "PutRolePolicy", RoleName=role_name)
    image = "811284229777.dkr.ecr.us-east-1.amazonaws.com/object-detection:1"
    document = json.loads(put["PolicyDocument"])
    expected = execution_role.for_execution_role(
        "pascal-detector",
        spec,
        image_uri=image,
        model_data_s3_uris=["s3://models-before/od/model.tar.gz"],
    )
    assert document == expected
    assert allows([document], Request("s3:GetObject", "arn:aws:s3:::models-before/od/model.tar.gz"))


def test_the_hand_started_loop_converts_to_a_manifest_line(ran: dict[str, Any]) -> None:
    spec = policy(ran)
    loop = call(ran, "StartHumanLoop")
    task = json.loads(loop["HumanLoopInput"]["InputContent"])
    assert list(task) == ["taskObject"]
    prefixes = spec.labels.image_s3_prefixes or []
    assert any(task["taskObject"].startswith(p.rstrip("/") + "/") for p in prefixes)
    (line,) = (ran["work"] / "first-try.jsonl").read_text().splitlines()
    sample = json.loads(code_blocks("json")[0])
    assert json.loads(line)["source-ref"] == sample["inputContent"]["taskObject"]


def test_the_sample_output_is_what_the_template_and_the_loop_produce(ran: dict[str, Any]) -> None:
    spec = policy(ran)
    sample = json.loads(code_blocks("json")[0])
    assert list(sample["humanAnswers"][0]["answerContent"]) == ["annotatedResult"]
    converted = Converter(spec.labels).convert(sample)
    assert isinstance(converted, Converted), converted
    annotations = json.loads(converted.line)["a2i-retraining"]["annotations"]
    assert [a["class_id"] for a in annotations] == [11, 14]  # dog, person


def test_the_inference_code_sends_a_valid_start_human_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    (code,) = code_blocks("python")
    client = botocore.session.get_session().create_client(
        "sagemaker-a2i-runtime",
        region_name=REGION,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    sent: list[dict[str, Any]] = []
    client.meta.events.register(
        "provide-client-params.sagemaker-a2i-runtime.StartHumanLoop",
        lambda params, **_: sent.append(dict(params)),
    )
    image = "s3://my-bucket/images/2008_000123.jpg"
    flow = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:flow-definition/fd-voc-detector"
    expected = {
        "HumanLoopName": ANY,
        "FlowDefinitionArn": flow,
        "HumanLoopInput": {"InputContent": json.dumps({"taskObject": image})},
    }
    loop_arn = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:human-loop/x"
    with Stubber(client) as stub:
        stub.add_response("start_human_loop", {"HumanLoopArn": loop_arn}, expected)
        monkeypatch.setattr(boto3, "client", lambda *args, **kwargs: client)
        namespace: dict[str, Any] = {}
        exec(compile(code, str(GUIDE), "exec"), namespace)  # the guide's own code
        assert namespace["review"](image) == loop_arn
    model = botocore.session.get_session().get_service_model("sagemaker-a2i-runtime")
    validate_params(sent[0], model.operation_model("StartHumanLoop").input_shape)
    assert namespace["unsure"]([[11, 0.45, 0.1, 0.1, 0.5, 0.5]])
    assert not namespace["unsure"]([[11, 0.93, 0.1, 0.1, 0.5, 0.5], [14, 0.05, 0, 0, 1, 1]])
