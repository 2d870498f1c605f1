"""`retraining-operator plan ...`: print the exact AWS requests the operator would send.

Nothing here calls AWS. `plan training` reads a RetrainingPolicy YAML file and prints
the `CreateTrainingJob` request of one run as JSON on stdout (the
`CreateHyperParameterTuningJob` request when the policy sets `training.tuning`; a note
on stderr says which). Each `plan` target registers itself with a
`_register_<target>(plan_sub)` function; handlers import their dependencies lazily.
"""

from __future__ import annotations

import argparse
import re
import sys
from typing import TYPE_CHECKING, Any

from retraining_operator.commands import Subparsers, plan_shadow

if TYPE_CHECKING:
    from retraining_operator.api import RetrainingPolicySpec
    from retraining_operator.reconcile.naming import PolicyRef

RUN_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$"


class PlanError(Exception):
    """Bad input to a plan command (exit code 2, message on stderr)."""


def register(sub: Subparsers) -> None:
    plan = sub.add_parser(
        "plan",
        help="print the AWS requests the operator would send for a policy (no AWS calls)",
        description="Print the exact AWS requests the operator would send, as JSON, "
        "without calling AWS.",
    )
    plan_sub = plan.add_subparsers(dest="plan_target", metavar="TARGET", required=True)
    _register_training(plan_sub)
    _register_rollout(plan_sub)
    _register_registry(plan_sub)
    plan_shadow.register(plan_sub)


# ---------------------------------------------------------------------------------------
# Shared helpers for plan targets


def load_policy(path: str) -> tuple[PolicyRef, RetrainingPolicySpec]:
    """A RetrainingPolicy YAML file -> (identity, validated spec).

    The policy UID is `metadata.uid` when the file has one; otherwise a stable stand-in
    derived from namespace/name (`PolicyRef.without_uid`).
    """
    import yaml
    from pydantic import ValidationError

    from retraining_operator.api import API_GROUP, KIND, RetrainingPolicySpec
    from retraining_operator.api.problems import problem_lines
    from retraining_operator.reconcile.naming import PolicyRef

    try:
        with open(path, encoding="utf-8") as handle:
            document: Any = yaml.safe_load(handle)
    except OSError as error:
        raise PlanError(f"cannot read {path}: {error.strerror or error}") from error
    except yaml.YAMLError as error:
        raise PlanError(f"{path} is not valid YAML: {error}") from error
    if not isinstance(document, dict) or document.get("kind") != KIND:
        raise PlanError(f"{path} is not a {KIND} (kind: {KIND}, apiVersion: {API_GROUP}/...)")
    api_version = str(document.get("apiVersion", ""))
    if not api_version.startswith(f"{API_GROUP}/"):
        raise PlanError(f"{path}: apiVersion must be {API_GROUP}/<version>, not {api_version!r}")
    metadata = document.get("metadata") or {}
    name = metadata.get("name")
    if not name:
        raise PlanError(f"{path}: metadata.name is required")
    namespace = str(metadata.get("namespace") or "default")
    try:
        spec = RetrainingPolicySpec.model_validate(document.get("spec") or {})
    except ValidationError as error:
        lines = problem_lines(error, prefix="spec")
        raise PlanError(f"{path}: invalid spec:\n  " + "\n  ".join(lines)) from None
    uid = metadata.get("uid")
    policy = (
        PolicyRef(namespace=namespace, name=str(name), uid=str(uid))
        if uid
        else PolicyRef.without_uid(namespace, str(name))
    )
    return policy, spec


def _run_id(text: str | None) -> str:
    from datetime import UTC, datetime

    from retraining_operator.reconcile.naming import run_id_for

    if text is None:
        return run_id_for(datetime.now(UTC))
    if not re.fullmatch(RUN_ID_PATTERN, text):
        raise PlanError(f"--run-id {text!r} must match {RUN_ID_PATTERN}")
    return text


def _emit(document: object) -> None:
    import json

    json.dump(document, sys.stdout, indent=2)
    sys.stdout.write("\n")


# ---------------------------------------------------------------------------------------
# plan training


def _register_training(plan_sub: Subparsers) -> None:
    training = plan_sub.add_parser(
        "training",
        help="print the CreateTrainingJob (or tuning job) request of one run",
        description="Print the exact CreateTrainingJob request (CreateHyperParameterTuningJob "
        "if training.tuning is set) for one run of a policy, as JSON on stdout. The job "
        "name uses metadata.uid if the file has one, else a stand-in derived from "
        "namespace/name.",
    )
    training.add_argument("--policy", required=True, metavar="FILE.yaml", help="policy file")
    training.add_argument(
        "--train-manifest", required=True, metavar="S3_URI", help="train augmented manifest"
    )
    training.add_argument(
        "--validation-manifest",
        required=True,
        metavar="S3_URI",
        help="validation augmented manifest",
    )
    training.add_argument(
        "--train-samples",
        required=True,
        type=int,
        metavar="N",
        help="lines in the train manifest (num_training_samples)",
    )
    training.add_argument(
        "--base-model",
        metavar="S3_URI",
        help="model.tar.gz to continue from (default: training.baseModel.s3Uri; required "
        "when the policy uses fromEndpoint, since plan does not call AWS)",
    )
    training.add_argument(
        "--run-id", metavar="ID", help="run id used in names and tags (default: from now)"
    )
    training.set_defaults(handler=_plan_training)


def _plan_training(args: argparse.Namespace) -> int:
    try:
        return _plan_training_checked(args)
    except PlanError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


def _plan_training_checked(args: argparse.Namespace) -> int:
    from retraining_operator.api.problems import s3_uri_problem
    from retraining_operator.aws.images import ImageLookupError
    from retraining_operator.flows.training import training_image_uri
    from retraining_operator.reconcile.training_request import (
        TrainingData,
        TrainingSpecError,
        training_job_request,
        tuning_job_request,
    )

    policy, spec = load_policy(args.policy)
    base_model = args.base_model or spec.training.base_model.s3_uri
    if not base_model:
        raise PlanError(
            "the policy takes its base model from the endpoint (baseModel.fromEndpoint); "
            "pass --base-model s3://.../model.tar.gz"
        )
    for flag, value in (
        ("--train-manifest", args.train_manifest),
        ("--validation-manifest", args.validation_manifest),
        ("--base-model", base_model),
    ):
        if problem := s3_uri_problem(value):
            raise PlanError(f"{flag} {value!r} {problem}")
    data = TrainingData(
        train_manifest_s3_uri=args.train_manifest,
        validation_manifest_s3_uri=args.validation_manifest,
        train_samples=args.train_samples,
        base_model_s3_uri=base_model,
    )
    run_id = _run_id(args.run_id)
    try:
        image = training_image_uri(spec)
        if spec.training.tuning is not None:
            print(
                "# CreateHyperParameterTuningJob (training.tuning is set)",
                file=sys.stderr,
            )
            _emit(tuning_job_request(spec, policy, run_id, data, image_uri=image))
        else:
            _emit(training_job_request(spec, policy, run_id, data, image_uri=image))
    except (TrainingSpecError, ImageLookupError) as error:
        raise PlanError(str(error)) from error
    return 0


# ---------------------------------------------------------------------------------------
# plan rollout


def _register_rollout(plan_sub: Subparsers) -> None:
    rollout = plan_sub.add_parser(
        "rollout",
        help="print the CreateModel, CreateEndpointConfig and UpdateEndpoint requests",
        description="Print the requests that roll a trained model out to the policy's "
        'endpoint, as one JSON object {"CreateModel": ..., "CreateEndpointConfig": ..., '
        '"UpdateEndpoint": ...} on stdout. The new config copies the current one (a '
        "DescribeEndpointConfig answer) with the target variant serving the new model; "
        "UpdateEndpoint carries the policy's blue/green or rolling DeploymentConfig and "
        "auto-rollback alarms (VariantShift: the config adding the new model as a second "
        "variant, without DeploymentConfig). Names use metadata.uid if the file has one.",
    )
    rollout.add_argument("--policy", required=True, metavar="FILE.yaml", help="policy file")
    rollout.add_argument(
        "--model-data",
        required=True,
        metavar="S3_URI",
        help="the trained model.tar.gz (the training job's S3ModelArtifacts)",
    )
    current = rollout.add_mutually_exclusive_group(required=True)
    current.add_argument(
        "--current-endpoint-config",
        metavar="FILE.json",
        help="the endpoint's current config: the JSON answer of "
        "`aws sagemaker describe-endpoint-config`",
    )
    current.add_argument(
        "--first-deployment",
        action="store_true",
        help="the endpoint does not exist yet: plan its first config (one variant) and "
        "CreateEndpoint, as the operator does",
    )
    rollout.add_argument(
        "--current-tags",
        metavar="FILE.json",
        help="the current config's tags to copy: the JSON answer of `aws sagemaker list-tags`",
    )
    rollout.add_argument(
        "--current-endpoint",
        metavar="FILE.json",
        help="the endpoint's live state: the JSON answer of `aws sagemaker describe-endpoint` "
        "(live desired instance counts and weights; a VariantShift's new variant starts at "
        "the old one's live count)",
    )
    rollout.add_argument(
        "--current-model",
        metavar="FILE.json",
        help="the serving model: the JSON answer of `aws sagemaker describe-model` (the new "
        "Model inherits its VpcConfig, EnableNetworkIsolation, Environment, Mode, ImageConfig)",
    )
    rollout.add_argument(
        "--image",
        metavar="URI",
        help="inference image of the model (default: the policy's training image, which "
        "serves for built-in object detection)",
    )
    rollout.add_argument(
        "--run-id", metavar="ID", help="run id used in names and tags (default: from now)"
    )
    rollout.set_defaults(handler=_plan_rollout)


def _plan_rollout(args: argparse.Namespace) -> int:
    try:
        return _plan_rollout_checked(args)
    except PlanError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


def _read_json(path: str, flag: str) -> Any:
    import json

    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except OSError as error:
        raise PlanError(f"{flag}: cannot read {path}: {error.strerror or error}") from error
    except json.JSONDecodeError as error:
        raise PlanError(f"{flag}: {path} is not valid JSON: {error}") from error


def _live_state(args: argparse.Namespace) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """--current-endpoint (DescribeEndpoint) and --current-model (DescribeModel), checked."""
    from retraining_operator.reconcile.rollout.endpoint import EndpointView

    endpoint: Any = None
    if args.current_endpoint:
        endpoint = _read_json(args.current_endpoint, "--current-endpoint")
        try:
            if not isinstance(endpoint, dict):
                raise TypeError("not an object")
            EndpointView.from_describe(endpoint)
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            raise PlanError(
                "--current-endpoint must be a DescribeEndpoint answer (a JSON object with "
                f"EndpointName, EndpointStatus and ProductionVariants): {error}"
            ) from error
    model: Any = None
    if args.current_model:
        model = _read_json(args.current_model, "--current-model")
        containers = model.get("Containers", []) if isinstance(model, dict) else None
        primary = model.get("PrimaryContainer", {}) if isinstance(model, dict) else None
        if (
            not isinstance(model, dict)
            or not isinstance(primary, dict)
            or not isinstance(containers, list)
            or not all(isinstance(c, dict) for c in containers)
        ):
            raise PlanError(
                "--current-model must be a DescribeModel answer (a JSON object with "
                "PrimaryContainer or Containers)"
            )
    return endpoint, model


def _plan_rollout_checked(args: argparse.Namespace) -> int:
    from retraining_operator.api import Strategy
    from retraining_operator.api.problems import s3_uri_problem
    from retraining_operator.aws.images import ImageLookupError
    from retraining_operator.flows.training import training_image_uri
    from retraining_operator.reconcile.rollout import RolloutError
    from retraining_operator.reconcile.rollout.endpoint import EndpointView
    from retraining_operator.reconcile.rollout.plan import plan_rollout
    from retraining_operator.reconcile.rollout.requests import LiveConfig, ModelSource

    policy, spec = load_policy(args.policy)
    if problem := s3_uri_problem(args.model_data):
        raise PlanError(f"--model-data {args.model_data!r} {problem}")
    if args.first_deployment:
        for flag in ("current_tags", "current_endpoint", "current_model"):
            if getattr(args, flag):
                option = "--" + flag.replace("_", "-")
                raise PlanError(f"{option} describes a live endpoint: not with --first-deployment")
        return _emit_first_deployment(args, policy, spec)
    current = _read_json(args.current_endpoint_config, "--current-endpoint-config")
    if not isinstance(current, dict) or not isinstance(current.get("ProductionVariants"), list):
        raise PlanError(
            "--current-endpoint-config must be a DescribeEndpointConfig answer "
            "(a JSON object with ProductionVariants)"
        )
    tags: Any = None
    if args.current_tags:
        loaded = _read_json(args.current_tags, "--current-tags")
        tags = loaded.get("Tags", []) if isinstance(loaded, dict) else loaded
        if not isinstance(tags, list):
            raise PlanError('--current-tags must be a ListTags answer ({"Tags": [...]})')
    live = _live_state(args)
    run_id = _run_id(args.run_id)
    try:
        image = args.image or training_image_uri(spec)
        endpoint = EndpointView.from_describe(live[0]) if live[0] else None
        plan = plan_rollout(
            policy,
            spec,
            run_id=run_id,
            source=ModelSource(args.model_data, image, serving_model=live[1]),
            live=LiveConfig(current, tags=tags, endpoint=endpoint),
        )
    except (RolloutError, ImageLookupError) as error:
        raise PlanError(str(error)) from error
    if spec.deployment.strategy is Strategy.VARIANT_SHIFT:
        print(
            "# VariantShift: the config adds the new model as a second variant; weights are "
            "then stepped with UpdateEndpointWeightsAndCapacities",
            file=sys.stderr,
        )
    _emit(plan.to_json())
    return 0


def _emit_first_deployment(args: argparse.Namespace, policy: Any, spec: Any) -> int:
    """The operator's first deployment: the Model, a one-variant config and CreateEndpoint."""
    from retraining_operator.aws.images import ImageLookupError
    from retraining_operator.flows.training import training_image_uri
    from retraining_operator.reconcile.rollout import RolloutError
    from retraining_operator.reconcile.rollout.plan import plan_rollout
    from retraining_operator.reconcile.rollout.requests import ModelSource

    try:
        image = args.image or training_image_uri(spec)
        plan = plan_rollout(
            policy,
            spec,
            run_id=_run_id(args.run_id),
            source=ModelSource(args.model_data, image, serving_model=None),
            live=None,
        )
    except (RolloutError, ImageLookupError) as error:
        raise PlanError(str(error)) from error
    _emit(plan.to_json())
    return 0


# ---------------------------------------------------------------------------------------
# plan registry


def _register_registry(plan_sub: Subparsers) -> None:
    registry = plan_sub.add_parser(
        "registry",
        help="print the CreateModelPackage request that registers a run's candidate",
        description="Print the CreateModelPackage request that registers one run's trained "
        'model in the policy\'s Model Package Group (spec.registry), as {"CreateModelPackage": '
        "...} on stdout. Without --metric-value the candidate is taken to have passed the "
        "gate (Approved, or PendingManualApproval with approval Manual); with it, the gate "
        "judges it (a failed gate registers it Rejected).",
    )
    registry.add_argument("--policy", required=True, metavar="FILE.yaml", help="policy file")
    registry.add_argument(
        "--model-data",
        required=True,
        metavar="S3_URI",
        help="the trained model.tar.gz (the training job's S3ModelArtifacts)",
    )
    registry.add_argument("--run-id", metavar="ID", help="run id (default: from now)")
    registry.add_argument("--training-job", metavar="NAME", help="training job (lineage)")
    registry.add_argument("--train-manifest", metavar="S3_URI", help="train manifest (lineage)")
    registry.add_argument(
        "--validation-manifest", metavar="S3_URI", help="validation manifest (lineage)"
    )
    registry.add_argument(
        "--metric-value", type=float, metavar="X", help="the new model's gate metric value"
    )
    registry.add_argument(
        "--serving-value", type=float, metavar="X", help="the serving model's gate metric value"
    )
    registry.add_argument("--image", metavar="URI", help="inference image (default: training's)")
    registry.set_defaults(handler=_plan_registry)


def _plan_registry(args: argparse.Namespace) -> int:
    try:
        return _plan_registry_checked(args)
    except PlanError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


def _plan_registry_checked(args: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    from retraining_operator.api import CurrentRun, RunStage
    from retraining_operator.api.problems import s3_uri_problem
    from retraining_operator.aws.images import ImageLookupError
    from retraining_operator.flows.training import training_image_uri
    from retraining_operator.reconcile.gate import GateDecision, evaluate_gate
    from retraining_operator.reconcile.registry import (
        Candidate,
        RegistryError,
        model_package_request,
    )

    policy, spec = load_policy(args.policy)
    if spec.registry is None:
        raise PlanError(f"{args.policy}: spec.registry is not set; the operator registers nothing")
    for flag, value in (
        ("--model-data", args.model_data),
        ("--train-manifest", args.train_manifest),
        ("--validation-manifest", args.validation_manifest),
    ):
        if value is not None and (problem := s3_uri_problem(value)):
            raise PlanError(f"{flag} {value!r} {problem}")
    run_id = _run_id(args.run_id)
    job = args.training_job or policy.training_job_name(run_id)
    if args.metric_value is None:
        decision = GateDecision(
            passed=True,
            metric=spec.gate.metric,
            value=None,
            reason="plan: the candidate is taken to have passed the gate (see --metric-value)",
        )
    else:
        decision = evaluate_gate(
            spec.gate,
            {spec.gate.metric: args.metric_value},
            serving_value=args.serving_value,
            job_name=job,
        )
    run = CurrentRun(
        id=run_id,
        stage=RunStage.EVALUATING,
        started_at=datetime.now(UTC),
        manifest_s3_uri=args.train_manifest,
        validation_manifest_s3_uri=args.validation_manifest,
        training_job_name=job,
        model_data_url=args.model_data,
    )
    try:
        candidate = Candidate(
            run=run,
            training_job_name=job,
            model_data_url=args.model_data,
            image=args.image or training_image_uri(spec),
            decision=decision,
        )
        request = model_package_request(policy, spec, candidate)
    except (RegistryError, ImageLookupError) as error:
        raise PlanError(str(error)) from error
    if request.get("ModelApprovalStatus") != "PendingManualApproval":
        print(
            "# then UpdateModelPackage with the ApprovalDescription (CreateModelPackage takes "
            "none)",
            file=sys.stderr,
        )
    _emit({"CreateModelPackage": request})
    return 0
