"""`retraining-operator plan shadow`: the CreateInferenceExperiment request of one run's
shadow test (deployment.shadow), exactly as the operator sends it; no AWS calls."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from typing import Any

from retraining_operator.commands import Subparsers


def register(plan_sub: Subparsers) -> None:
    shadow = plan_sub.add_parser(
        "shadow",
        help="print the CreateInferenceExperiment request of a run's shadow test",
        description="Print the CreateInferenceExperiment request of one run's shadow test "
        '(spec.deployment.shadow), as {"CreateInferenceExperiment": ...} on stdout: the '
        "production variant of the endpoint's current config (a DescribeEndpointConfig "
        "answer) as the source, the candidate as the shadow. Timestamps are ISO 8601 (what "
        "`aws sagemaker create-inference-experiment --cli-input-json` takes). Names use "
        "metadata.uid if the file has one.",
    )
    shadow.add_argument("--policy", required=True, metavar="FILE.yaml", help="policy file")
    shadow.add_argument(
        "--candidate-model", required=True, metavar="NAME", help="the candidate's Model name"
    )
    shadow.add_argument("--run-id", required=True, metavar="ID", help="the run id")
    shadow.add_argument(
        "--current-endpoint-config",
        required=True,
        metavar="FILE.json",
        help="the endpoint's current config: the JSON answer of "
        "`aws sagemaker describe-endpoint-config`",
    )
    shadow.add_argument(
        "--current-endpoint",
        metavar="FILE.json",
        help="the endpoint as described (`aws sagemaker describe-endpoint`): the production "
        "variant's live instance count",
    )
    shadow.add_argument(
        "--start",
        metavar="TIME",
        help="the experiment's start, ISO 8601 (default: now); it ends after duration",
    )
    shadow.set_defaults(handler=_plan_shadow)


def _plan_shadow(args: argparse.Namespace) -> int:
    from retraining_operator.commands.plan import PlanError

    try:
        return _checked(args)
    except PlanError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


def _checked(args: argparse.Namespace) -> int:
    from retraining_operator.commands.plan import (
        PlanError,
        _emit,
        _read_json,
        _run_id,
        load_policy,
    )
    from retraining_operator.reconcile import shadow
    from retraining_operator.reconcile.rollout import RolloutError
    from retraining_operator.reconcile.rollout.endpoint import EndpointView

    policy, spec = load_policy(args.policy)
    if spec.deployment.shadow is None:
        raise PlanError(f"{args.policy}: spec.deployment.shadow is not set; no shadow test runs")
    config = _read_json(args.current_endpoint_config, "--current-endpoint-config")
    if not isinstance(config, dict) or not isinstance(config.get("ProductionVariants"), list):
        raise PlanError(
            "--current-endpoint-config must be a DescribeEndpointConfig answer "
            "(a JSON object with ProductionVariants)"
        )
    endpoint = None
    if args.current_endpoint:
        described = _read_json(args.current_endpoint, "--current-endpoint")
        if not isinstance(described, dict) or "EndpointName" not in described:
            raise PlanError("--current-endpoint must be a DescribeEndpoint answer")
        endpoint = EndpointView.from_describe(described)
    try:
        production = shadow.production_variant(config, spec.deployment.variant_name, endpoint)
        request = shadow.experiment_request(
            policy,
            spec,
            run_id=_run_id(args.run_id),
            production=production,
            candidate_model=args.candidate_model,
            now=_start(args.start),
        )
    except (RolloutError, ValueError) as error:
        raise PlanError(str(error)) from error
    _emit({"CreateInferenceExperiment": _json_ready(request)})
    return 0


def _start(text: str | None) -> datetime:
    from retraining_operator.commands.plan import PlanError

    if text is None:
        return datetime.now(UTC).replace(microsecond=0)
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as error:
        raise PlanError(f"--start {text!r} is not an ISO 8601 time") from error
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _json_ready(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    if isinstance(value, dict):
        return {key: _json_ready(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_json_ready(item) for item in value]
    return value
