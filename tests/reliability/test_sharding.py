"""Sharding on the real kube-apiserver: three operator processes (`--shards 3 --shard i`)
watch the same 300 policies; each policy is polled by exactly the shard its UID hashes to.

Every policy has its own flow definition, so the stand-ins' request log attributes each
ListHumanLoops to a policy (its FlowDefinitionArn) and, through the access key id each
process signs with, to a shard.
"""

from __future__ import annotations

import json
import time
from collections import defaultdict

import pytest

from reliability.conftest import CaseReport
from reliability.scene import Scene
from retraining_operator.reconcile.sharding import shard_of

pytestmark = [pytest.mark.reliability, pytest.mark.kube, pytest.mark.e2e]

SHARDS = 3
POLICIES = 300
KEYS = [f"AKIASHARD{n}0000000000" for n in range(SHARDS)]


def test_each_of_300_policies_is_polled_by_exactly_its_shard(
    scene: Scene, report: CaseReport
) -> None:
    report.case(18, "sharding: 3 operators, 300 policies")
    report.inject(
        "300 policies, each with its own flow definition, pollInterval 1h; three operators "
        "--shards 3 --shard 0..2, each signing AWS calls with its own access key id"
    )
    aws = scene.aws
    world = scene.seed(0)
    policies = []
    for index in range(POLICIES):
        name = f"shard-p{index:03d}"
        output = f"s3://{world.bucket}/sharding/{name}"
        flow = aws.a2i.create_flow_definition(name, output)
        body = scene.policy(
            name,
            min_new_samples=1000,
            humanLoops={"flowDefinitionArn": flow.arn, "pollInterval": "1h"},
            dataset={"outputS3Uri": output},
        )
        policies.append(body)
    created = scene.kube.kubectl(
        "apply",
        "-f",
        "-",
        input="\n---\n".join(json.dumps(p) for p in policies),
    )
    assert created.returncode == 0, created.stderr
    for shard, key in enumerate(KEYS):
        op = scene.operator(f"--shards={SHARDS}", f"--shard={shard}", tick=30.0)
        op.aws_env = {**op.aws_env, "AWS_ACCESS_KEY_ID": key}
        op.start()

    arns = {p["spec"]["humanLoops"]["flowDefinitionArn"]: p["metadata"]["name"] for p in policies}

    def polled() -> dict[str, set[str | None]]:
        by_arn: dict[str, set[str | None]] = defaultdict(set)
        for call in aws.log.calls("sagemaker-a2i-runtime", "ListHumanLoops"):
            by_arn[call.params["FlowDefinitionArn"]].add(call.access_key)
        return by_arn

    started = time.monotonic()
    scene.wait(lambda: len(polled()) == POLICIES, timeout=240, what="every policy's first poll")
    all_polled = time.monotonic() - started
    time.sleep(5)  # late duplicates from a wrong shard would show up here

    uids = {
        obj["metadata"]["name"]: obj["metadata"]["uid"]
        for obj in scene.kube.kubectl_json("get", "rtp", namespace=scene.namespace)["items"]
    }
    by_arn = polled()
    calls = aws.log.calls("sagemaker-a2i-runtime", "ListHumanLoops")
    per_shard = [sum(c.access_key == key for c in calls) for key in KEYS]
    wrong = {
        name: keys
        for arn, name in arns.items()
        if (keys := by_arn.get(arn, set())) != {KEYS[shard_of(uids[name], SHARDS)]}
    }
    report.observe(
        policies=POLICIES,
        polled=len(by_arn),
        polls_per_shard=per_shard,
        polled_by_a_wrong_or_second_shard=len(wrong),
        seconds_to_poll_all=round(all_polled, 1),
    )
    report.summary()
    assert not wrong, dict(list(wrong.items())[:5])
    assert set(by_arn) == set(arns)  # none missed, nothing else polled
    assert len(calls) == POLICIES  # one poll each (pollInterval 1h): no shard polled twice
    assert all(count > 50 for count in per_shard), per_shard  # the hash spreads them
