"""Issue 29: every action finishes or is undone, and no person's instruction is lost.

Each test is one finding on the operator before issue 29 (docs/reliability.md lists them):
the whole controller over the AWS stand-ins, passes driven by the test's clock, and the
object's annotations and status held by the harness as the API server would hold them.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
from test_controller import REF, Harness, policy_spec

from retraining_operator import metrics
from retraining_operator.api import (
    APPROVE_ANNOTATION,
    ROLLBACK_TO_ANNOTATION,
    RetrainingPolicyStatus,
    RunStage,
)
from retraining_operator.config import OperatorConfig
from retraining_operator.policy_pass.controller import PolicyView
from retraining_operator.reconcile.tenancy import TAG_ENDPOINT_OWNER
from retraining_standins.demo import DemoWorld, seed_demo
from retraining_standins.stack import AwsStandins

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def world(aws: AwsStandins) -> DemoWorld:
    return seed_demo(aws, 12)


def serving(status: RetrainingPolicyStatus) -> bool:
    return status.phase is not None and status.phase.value == "Serving" and not status.current_run


def endpoint_model(aws: AwsStandins, world: DemoWorld) -> dict[str, str]:
    """{variant: model} the endpoint serves now."""
    config = aws.sagemaker.call(
        "DescribeEndpointConfig",
        EndpointConfigName=aws.sagemaker.describe_endpoint(world.endpoint_name)[
            "EndpointConfigName"
        ],
    )
    return {v["VariantName"]: v["ModelName"] for v in config["ProductionVariants"]}


def endpoint_tags(aws: AwsStandins, world: DemoWorld) -> dict[str, str]:
    arn = aws.sagemaker.describe_endpoint(world.endpoint_name)["EndpointArn"]
    tags = aws.sagemaker.call("ListTags", ResourceArn=arn)["Tags"]
    return {t["Key"]: t["Value"] for t in tags}


def deployed_once(aws: AwsStandins, world: DemoWorld, **deployment: Any) -> Harness:
    """A policy whose first run is deployed (its model serves; the seed model is history)."""
    h = Harness(aws, policy_spec(world, **deployment))
    aws.sagemaker.set_metrics_provider(lambda job, hp: {"validation:mAP": 0.72})
    h.until(serving, seconds=120)
    return h


def deployed_twice(aws: AwsStandins, world: DemoWorld) -> Harness:
    """Two runs deployed: the second serves, the first is in the history behind it."""
    h = deployed_once(aws, world)
    aws.a2i.add_loops("fd-demo", 10, interval=5.0)
    h.until(lambda s: serving(s) and len(s.history) == 2, seconds=120)
    return h


# ---------------------------------------------------------------------------------------
# Annotations: cleared only once their action succeeded, and only if unchanged


def test_an_approval_is_kept_while_update_model_package_fails(
    aws: AwsStandins, world: DemoWorld
) -> None:
    spec = policy_spec(world)
    spec["registry"] = {"modelPackageGroupName": "od-candidates", "approval": "Manual"}
    h = Harness(aws, spec)
    aws.sagemaker.set_metrics_provider(lambda job, hp: {"validation:mAP": 0.72})
    status = h.until(
        lambda s: s.current_run is not None and s.current_run.stage is RunStage.AWAITING_APPROVAL,
        seconds=120,
    )
    assert status.current_run is not None
    run_id, arn = status.current_run.id, status.current_run.model_package_arn
    h.annotations[APPROVE_ANNOTATION] = run_id
    # SageMaker answers 503 to every attempt of the pass's UpdateModelPackage.
    outage = aws.faults.fail("sagemaker", "UpdateModelPackage", status=503)
    status = h.tick()
    aws.faults.remove(outage)
    assert h.annotations.get(APPROVE_ANNOTATION) == run_id  # the person's approval is kept
    package = aws.sagemaker.call("DescribeModelPackage", ModelPackageName=arn)
    assert package["ModelApprovalStatus"] == "PendingManualApproval"
    # The next pass carries it out, then clears it, and the model rolls out.
    status = h.until(serving, seconds=120)
    assert APPROVE_ANNOTATION not in h.annotations
    package = aws.sagemaker.call("DescribeModelPackage", ModelPackageName=arn)
    assert package["ModelApprovalStatus"] == "Approved"
    assert status.history[0].outcome.value == "Deployed"


def test_rollback_to_changed_mid_run_is_carried_out_after_it(
    aws: AwsStandins, world: DemoWorld
) -> None:
    h = deployed_twice(aws, world)
    second, first = h.tick().history[:2]
    assert first.model_name is not None
    assert second.model_name is not None
    h.annotations[ROLLBACK_TO_ANNOTATION] = first.run_id
    status = h.tick()
    assert status.current_run is not None
    assert status.current_run.id.startswith("rb")
    h.annotations[ROLLBACK_TO_ANNOTATION] = second.run_id  # changed while the first rolls back
    status = h.until(lambda s: s.current_run is None)
    assert endpoint_model(aws, world) == {"AllTraffic": first.model_name}
    assert h.annotations.get(ROLLBACK_TO_ANNOTATION) == second.run_id  # not dropped
    status = h.until(
        lambda s: s.current_run is None and ROLLBACK_TO_ANNOTATION not in h.annotations
    )
    assert endpoint_model(aws, world) == {"AllTraffic": second.model_name}


@pytest.mark.parametrize("interruption", ["annotation removed", "policy suspended"])
def test_a_rollback_runs_to_its_end_whatever_happens_to_its_annotation(
    aws: AwsStandins, world: DemoWorld, interruption: str
) -> None:
    h = deployed_twice(aws, world)
    first = h.tick().history[1]
    h.annotations[ROLLBACK_TO_ANNOTATION] = first.run_id
    status = h.tick()
    assert status.current_run is not None
    assert status.current_run.stage is RunStage.DEPLOYING
    if interruption == "annotation removed":
        del h.annotations[ROLLBACK_TO_ANNOTATION]
    else:
        h.spec["suspend"] = True
    status = h.until(lambda s: s.current_run is None)
    assert status.history[0].run_id.startswith("rb")
    assert status.history[0].outcome.value == "Deployed"
    assert endpoint_model(aws, world) == {"AllTraffic": first.model_name}


def test_the_model_that_served_before_the_operator_is_recorded_once(
    aws: AwsStandins, world: DemoWorld
) -> None:
    h = deployed_once(aws, world)
    status = h.tick()
    assert status.pre_operator is not None
    assert status.pre_operator.model_name == world.model_name
    assert status.pre_operator.endpoint_config_name == world.endpoint_config_name
    assert status.pre_operator.model_data_url == world.model_data_url
    recorded = status.pre_operator
    h.annotations[ROLLBACK_TO_ANNOTATION] = "pre-operator"
    status = h.until(
        lambda s: s.current_run is None and ROLLBACK_TO_ANNOTATION not in h.annotations
    )
    assert endpoint_model(aws, world) == {"AllTraffic": world.model_name}
    assert status.pre_operator == recorded  # a later take does not overwrite it


# ---------------------------------------------------------------------------------------
# Deploy re-checks the registry


def test_a_package_rejected_after_its_approval_is_not_deployed(
    aws: AwsStandins, world: DemoWorld
) -> None:
    spec = policy_spec(world)
    spec["registry"] = {"modelPackageGroupName": "od-candidates", "approval": "Manual"}
    h = Harness(aws, spec)
    aws.sagemaker.set_metrics_provider(lambda job, hp: {"validation:mAP": 0.72})
    status = h.until(
        lambda s: s.current_run is not None and s.current_run.stage is RunStage.AWAITING_APPROVAL,
        seconds=120,
    )
    assert status.current_run is not None
    arn = status.current_run.model_package_arn
    h.annotations[APPROVE_ANNOTATION] = status.current_run.id
    # Approved, but the pass's deploy step cannot create the Model (503) ...
    outage = aws.faults.fail("sagemaker", "CreateModel", status=503)
    status = h.tick()
    aws.faults.remove(outage)
    assert status.current_run is not None
    assert status.current_run.stage is RunStage.DEPLOYING
    # ... and before the next pass a person rejects the package in SageMaker.
    aws.sagemaker.set_approval(arn, "Rejected", "labels drift on bicycles")
    status = h.until(lambda s: s.current_run is None)
    assert status.history[0].outcome.value == "Failed"
    assert "ModelPackageNotApproved" in (status.history[0].reason or "")
    assert aws.log.calls("sagemaker", "UpdateEndpoint") == []
    assert endpoint_model(aws, world) == {"AllTraffic": world.model_name}


# ---------------------------------------------------------------------------------------
# Deletion finishes or undoes


def test_deletion_stops_a_job_submitted_after_the_deletion_event(
    aws: AwsStandins, world: DemoWorld
) -> None:
    h = Harness(aws, policy_spec(world))
    aws.sagemaker.durations.training_in_progress = 10_000.0
    # The run starts, but its job cannot be submitted in that pass (SageMaker answers 503) ...
    outage = aws.faults.fail("sagemaker", "CreateTrainingJob", status=503)
    status = h.until(lambda s: s.current_run is not None)
    aws.faults.remove(outage)
    assert status.current_run is not None
    assert not status.current_run.training_job_name
    deleted_view = PolicyView(REF, 1, {}, copy.deepcopy(h.spec), copy.deepcopy(h.status))
    # ... the deletion event carries that status; the next pass submits the job.
    status = h.tick()
    assert status.current_run is not None
    assert status.current_run.training_job_name
    finalized = h.controller.finalize(deleted_view)
    assert [e.reason for e in finalized.events] == ["TrainingStopped"]
    (stop,) = aws.log.calls("sagemaker", "StopTrainingJob")
    assert stop.params["TrainingJobName"] == status.current_run.training_job_name


def test_deletion_stops_the_job_whatever_the_spec_says_now(
    aws: AwsStandins, world: DemoWorld
) -> None:
    h = Harness(aws, policy_spec(world))
    aws.sagemaker.durations.training_in_progress = 10_000.0
    h.until(lambda s: s.current_run is not None and s.current_run.training_job_name)
    h.spec["dataset"]["minNewSamples"] = "many"  # edited into something invalid, then deleted
    status = h.tick()
    assert status.phase is not None
    assert status.phase.value == "Failed"
    view = PolicyView(REF, 1, {}, copy.deepcopy(h.spec), copy.deepcopy(h.status))
    finalized = h.controller.finalize(view)
    assert [e.reason for e in finalized.events] == ["TrainingStopped"]
    assert len(aws.log.calls("sagemaker", "StopTrainingJob")) == 1


VARIANT_SHIFT = {
    "strategy": "VariantShift",
    "variantShift": {"steps": [10, 50, 100], "interval": "30m"},
}


def test_deletion_mid_variant_shift_takes_the_unjudged_model_off_and_releases_the_endpoint(
    aws: AwsStandins, world: DemoWorld
) -> None:
    spec = policy_spec(world, **VARIANT_SHIFT)
    del spec["deployment"]["blueGreen"]
    h = Harness(aws, spec)
    aws.sagemaker.set_metrics_provider(lambda job, hp: {"validation:mAP": 0.72})
    h.until(
        lambda s: (
            s.current_run is not None
            and s.current_run.deploy_step == 0
            and s.current_run.deploy_step_started_at is not None
        ),
        seconds=120,
    )
    models = endpoint_model(aws, world)
    assert set(models) == {"AllTraffic", "AllTraffic-alt"}  # the new model takes 10 %
    assert endpoint_tags(aws, world)[TAG_ENDPOINT_OWNER] == REF.uid
    # Deleted: kopf calls the finalizer again and again until it is released.
    for _ in range(40):
        view = PolicyView(REF, 1, {}, copy.deepcopy(h.spec), copy.deepcopy(h.status))
        finalized = h.controller.finalize(view)
        if finalized.status is not None:
            h.status = finalized.status.to_wire()
        if finalized.done:
            break
        aws.clock.advance(60)
    assert finalized.done
    assert endpoint_model(aws, world) == {"AllTraffic": world.model_name}
    assert TAG_ENDPOINT_OWNER not in endpoint_tags(aws, world)
    assert "EndpointReleased" in [e.reason for e in finalized.events]


# ---------------------------------------------------------------------------------------
# A refused policy is one more policy on /metrics


def test_a_refused_policy_reports_its_phase(aws: AwsStandins, world: DemoWorld) -> None:
    spec = policy_spec(world)
    spec["aws"]["roleArn"] = "arn:aws:iam::999999999999:role/other-team"
    h = Harness(aws, spec)
    h.controller.config = OperatorConfig(
        allowed_role_patterns=("arn:aws:iam::123456789012:role/*",)
    )
    status = h.tick()
    assert status.phase is not None
    assert status.phase.value == "Failed"
    failed = metrics.PHASE.labels(REF.namespace, REF.name, "Failed")
    assert failed._value.get() == 1  # type: ignore[attr-defined]
    # Admitted again: the phase it left goes to 0, like any pass's.
    h.spec["aws"].pop("roleArn")
    h.tick()
    assert failed._value.get() == 0  # type: ignore[attr-defined]
