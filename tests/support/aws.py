"""Pytest plugin: the AWS stand-ins (S3/STS/CloudWatch on moto, SageMaker + A2I emulator).

Fixtures:

- ``aws_standins`` (session): the running servers, an
  :class:`~retraining_standins.stack.AwsStandins`. Started once per session on free
  loopback ports.
- ``aws`` (function): the same object, reset to a clean slate for this test (no buckets,
  jobs, endpoints, loops, faults or logged calls; a manual clock restarted at the current
  time), with the environment pointing unmodified boto3 at it (``AWS_ENDPOINT_URL_S3``,
  ``_STS``, ``_CLOUDWATCH``, ``_SAGEMAKER``, ``_SAGEMAKER_A2I_RUNTIME``,
  ``_APPLICATION_AUTO_SCALING``, dummy credentials,
  region us-east-1; the developer's own AWS config files are hidden).
- ``aws_bucket`` (function): a bucket created in the S3 stand-in (``rtp-test-bucket``).
- ``a2i_flow`` (function): a flow definition ``fd-test`` whose outputs land under
  ``s3://<aws_bucket>/a2i-results``.

What a test can do with ``aws`` (see docs/testing.md, "AWS stand-ins"):

- ``aws.clock.advance(seconds)``: move every lifecycle forward.
- ``aws.a2i.add_loop(...)`` / ``add_loops(...)`` / ``complete_loop(...)`` / ``fail_loop(...)``;
  ``retraining_standins.seed.random_a2i_output(...)`` for hand-made outputs.
- ``aws.sagemaker.plan_training(...)``, ``set_metrics(...)``, ``set_metrics_provider(...)``,
  ``fail_next_update(...)``, ``durations``.
- ``aws.faults.throttle(...)`` / ``fail(...)`` / ``delay(...)`` / ``add(FaultRule(...))``.
- ``aws.log.calls(service, operation)`` / ``aws.log.operations(service)``.
- ``aws.client(service, **botocore_config)`` (public endpoints) and ``aws.admin_client(...)``
  (moto direct: no faults, not logged) for setup.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from retraining_standins.a2i import FlowDefinition
from retraining_standins.stack import AwsStandins, isolated_aws_env

_CLEARED = (
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_ROLE_ARN",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_ENDPOINT_URL",
    "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS",
)


@pytest.fixture(scope="session")
def aws_standins() -> Iterator[AwsStandins]:
    standins = AwsStandins()
    standins.start()
    try:
        yield standins
    finally:
        standins.stop()


@pytest.fixture
def aws(aws_standins: AwsStandins, monkeypatch: pytest.MonkeyPatch) -> AwsStandins:
    aws_standins.reset()
    # `reset()` keeps the clock's speed (the stand-ins CLI runs at speed 10 across resets);
    # a test that switched to real time (e2e, reliability) must not leak it into the next.
    aws_standins.clock.reset()
    for name in _CLEARED:
        monkeypatch.delenv(name, raising=False)
    for name, value in isolated_aws_env(aws_standins).items():
        monkeypatch.setenv(name, value)
    return aws_standins


@pytest.fixture
def aws_bucket(aws: AwsStandins) -> str:
    return aws.create_bucket("rtp-test-bucket")


@pytest.fixture
def a2i_flow(aws: AwsStandins, aws_bucket: str) -> FlowDefinition:
    return aws.a2i.create_flow_definition("fd-test", f"s3://{aws_bucket}/a2i-results")
