"""Per-policy AWS sessions: one boto3 session (optionally an assumed role) and cached clients.

Every client uses botocore's standard retry mode (bounded exponential backoff with
jitter, throttling-aware) and explicit timeouts. An assumed role's credentials are
refreshable: botocore renews them before they expire, so a long ingest keeps going
across credential rotation. The first AssumeRole happens on the first call, so a role
that cannot be assumed fails that call with a typed error (AccessDenied, Throttled)
instead of failing the session's construction.

Throttled responses are counted (`take_throttled`) even when botocore's retries absorb
them, so the controller can report sustained throttling as an Event.
"""

from __future__ import annotations

import hashlib
import os
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol, cast

import boto3
from botocore.config import Config
from botocore.credentials import DeferredRefreshableCredentials
from botocore.loaders import Loader
from botocore.session import Session as BotocoreSession
from botocore.session import get_session

from retraining_operator import fencing
from retraining_operator.aws.errors import is_throttle_code

if TYPE_CHECKING:
    from mypy_boto3_application_autoscaling import ApplicationAutoScalingClient
    from mypy_boto3_cloudwatch import CloudWatchClient
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sagemaker import SageMakerClient
    from mypy_boto3_sagemaker_a2i_runtime import AugmentedAIRuntimeClient

DEFAULT_MAX_ATTEMPTS = 8
DEFAULT_POOL = 16
ASSUME_ROLE_SECONDS = 3600


class _SharedLoader(Loader):
    """botocore's data loader, one per process: every service model and endpoint rule set is
    parsed once, not once per policy. A policy's clients then cost about 10 ms of CPU to
    create instead of about 150 ms, which is what 500 policies starting at once need.

    boto3 appends its resource-model path to the loader of every Session it wraps; the
    operator uses no boto3 resources, so that append lands in a copy and the shared list
    does not grow with every session.
    """

    @property
    def search_paths(self) -> list[str]:
        return list(super().search_paths)


_loader_lock = threading.Lock()
_loaders: list[_SharedLoader] = []


def botocore_session() -> BotocoreSession:
    """A new botocore session (own credentials, own config) on the shared data loader."""
    core = get_session()
    with _loader_lock:
        if not _loaders:
            data_path = core.get_config_variable("data_path")
            extra = (
                [os.path.expanduser(os.path.expandvars(p)) for p in data_path.split(os.pathsep)]
                if data_path
                else None
            )
            _loaders.append(_SharedLoader(extra_search_paths=extra))
        core.register_component("data_loader", _loaders[0])
    return core


class CallBudget:
    """A token bucket shared by every client: at most `rate` HTTP sends per second.

    Hooked on botocore's `before-send`, so retries spend tokens too: a throttled
    operator slows down instead of hammering AWS (or the stand-ins) in a hot loop.
    """

    def __init__(
        self,
        rate: float,
        *,
        burst: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.rate = rate
        self.burst = burst if burst is not None else max(1.0, rate)
        self._tokens = self.burst
        self._clock = clock
        self._sleep = sleep
        self._last = clock()
        self._lock = threading.Lock()
        self.waited_seconds = 0.0
        self._shares: dict[str, CallBudget] = {}

    def share(self, key: str, rate: float) -> CallBudget:
        """A bucket of its own for `key` (a namespace), spent before this shared one: one
        namespace's backlog takes at most `rate` calls per second of the operator's budget,
        so another namespace's calls still find tokens. `rate <= 0`: this budget itself."""
        if rate <= 0:
            return self
        with self._lock:
            found = self._shares.get(key)
            if found is None or found.rate != rate:
                found = _ShareOf(self, rate, clock=self._clock, sleep=self._sleep)
                self._shares[key] = found
            return found

    def acquire(self) -> None:
        if self.rate <= 0:
            return
        while True:
            with self._lock:
                now = self._clock()
                self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
                self._last = now
                # Tolerance: float sums of waits land a hair under one token.
                if self._tokens >= 1 - 1e-9:
                    self._tokens = max(0.0, self._tokens - 1)
                    return
                wait = (1 - self._tokens) / self.rate
            self.waited_seconds += wait
            self._sleep(wait)


class _ShareOf(CallBudget):
    """One namespace's bucket under the operator-wide budget (`CallBudget.share`)."""

    def __init__(
        self,
        parent: CallBudget,
        rate: float,
        *,
        clock: Callable[[], float],
        sleep: Callable[[float], None],
    ) -> None:
        super().__init__(rate, clock=clock, sleep=sleep)
        self.parent = parent

    def acquire(self) -> None:
        super().acquire()
        self.parent.acquire()


class CallObserver(Protocol):
    """Receives one notice per API call and per failed call (metrics live outside aws/)."""

    def called(self, service: str, operation: str) -> None: ...

    def failed(self, service: str, operation: str, code: str) -> None: ...

    def throttled(self, service: str, operation: str) -> None: ...


def client_config(*, max_attempts: int = DEFAULT_MAX_ATTEMPTS, pool: int = DEFAULT_POOL) -> Config:
    return Config(
        retries={"mode": "standard", "max_attempts": max_attempts},
        connect_timeout=5,
        read_timeout=60,
        max_pool_connections=pool,
    )


MAX_SESSION_NAME = 64


def role_session_name(namespace: str, name: str) -> str:
    """STS RoleSessionName naming the policy (2-64 chars of [\\w+=,.@-]), unique per policy:
    a readable (possibly shortened) `rtp-<namespace>.<name>` and a hash of the full pair, so
    two long names that share a 64-character prefix never share a session name (CloudTrail
    tells them apart)."""
    full = f"{namespace}/{name}"
    digest = hashlib.sha256(full.encode()).hexdigest()[:10]
    readable = re.sub(r"[^\w+=,.@-]", "-", f"rtp-{namespace}.{name}")
    return f"{readable[: MAX_SESSION_NAME - len(digest) - 1]}-{digest}"


@dataclass(frozen=True)
class AssumedRole:
    """The role a session assumes, as whom (session name and tags), with which ExternalId."""

    role_arn: str
    session_name: str
    external_id: str | None = None
    # STS session tags, e.g. (("namespace", "team-a"), ("policy", "detector")): the role's
    # trust and permission policies can require them (aws:PrincipalTag/namespace).
    tags: tuple[tuple[str, str], ...] = ()

    def assume_role_args(self, seconds: int) -> dict[str, Any]:
        args: dict[str, Any] = {
            "RoleArn": self.role_arn,
            "RoleSessionName": self.session_name,
            "DurationSeconds": seconds,
        }
        if self.external_id is not None:
            args["ExternalId"] = self.external_id
        if self.tags:
            # Tag values: at most 256 characters of letters, digits, spaces and _.:/=+-@.
            args["Tags"] = [
                {"Key": key, "Value": re.sub(r"[^\w .:/=+\-@]", "-", value)[:256]}
                for key, value in self.tags
            ]
        return args


class AwsSession:
    """AWS access for one policy: region, optional assumed role, cached clients."""

    def __init__(
        self,
        region: str,
        *,
        role_arn: str | None = None,
        session_name: str = "a2i-retraining-operator",
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
        pool: int = DEFAULT_POOL,
        base: boto3.Session | None = None,
        budget: CallBudget | None = None,
        observer: CallObserver | None = None,
        assumed: AssumedRole | None = None,
        expected_bucket_owner: str | None = None,
    ) -> None:
        """`assumed` (a tenant's role, with session tags and ExternalId) wins over `role_arn`.
        `expected_bucket_owner`: every S3 call that takes ExpectedBucketOwner sends it, so a
        bucket owned by another account fails with AccessDenied instead of being read."""
        if assumed is None and role_arn is not None:
            assumed = AssumedRole(role_arn, session_name)
        self.region = region
        self.role_arn = assumed.role_arn if assumed is not None else None
        self.expected_bucket_owner = expected_bucket_owner
        self._config = client_config(max_attempts=max_attempts, pool=pool)
        self._base = base or boto3.Session(botocore_session=botocore_session(), region_name=region)
        self._clients: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._budget = budget
        self._observer = observer
        self._throttled = 0
        self._throttled_lock = threading.Lock()
        # Last: `_assumed` hooks the STS client, which needs everything above.
        self._session = self._assumed(assumed) if assumed is not None else self._base

    def client(self, service: str) -> Any:
        """A cached, thread-safe boto3 client (clients are safe to share across threads)."""
        with self._lock:
            if service not in self._clients:
                client = self._session.client(  # type: ignore[call-overload]
                    service, region_name=self.region, config=self._config
                )
                self._hook(client)
                if service == "s3" and self.expected_bucket_owner is not None:
                    owner = self.expected_bucket_owner
                    client.meta.events.register(
                        "provide-client-params.s3.*",
                        lambda params, model, **_: _expect_owner(params, model, owner),
                    )
                self._clients[service] = client
            return self._clients[service]

    def take_throttled(self) -> int:
        """How many throttled responses this session received since the last call (every
        attempt counts, also those botocore retried successfully)."""
        with self._throttled_lock:
            count, self._throttled = self._throttled, 0
            return count

    def _hook(self, client: Any) -> None:
        events = client.meta.events
        service = client.meta.service_model.service_name
        # First: a process that lost (or never held) the leader Lease sends nothing.
        events.register("before-send", lambda **_: fencing.check("AWS call"))
        if self._budget is not None:
            budget = self._budget
            events.register("before-send", lambda **_: budget.acquire())

        def needs_retry(response: Any = None, operation: Any = None, **_: Any) -> None:
            # Emitted after every attempt, before botocore decides whether to retry it.
            if not response:
                return
            code = str(response[1].get("Error", {}).get("Code", ""))
            if is_throttle_code(code):
                with self._throttled_lock:
                    self._throttled += 1
                if self._observer is not None and operation is not None:
                    self._observer.throttled(service, operation.name)

        events.register("needs-retry", needs_retry)
        if self._observer is not None:
            observer = self._observer

            def before_call(model: Any, **_: Any) -> None:
                observer.called(service, model.name)

            def after_call(model: Any, parsed: dict[str, Any], **_: Any) -> None:
                code = parsed.get("Error", {}).get("Code")
                if code:
                    observer.failed(service, model.name, str(code))

            def after_call_error(model: Any, exception: BaseException, **_: Any) -> None:
                observer.failed(service, model.name, type(exception).__name__)

            events.register("before-call", before_call)
            events.register("after-call", after_call)
            events.register("after-call-error", after_call_error)

    def s3(self) -> S3Client:
        return cast("S3Client", self.client("s3"))

    def sagemaker(self) -> SageMakerClient:
        return cast("SageMakerClient", self.client("sagemaker"))

    def a2i(self) -> AugmentedAIRuntimeClient:
        return cast("AugmentedAIRuntimeClient", self.client("sagemaker-a2i-runtime"))

    def cloudwatch(self) -> CloudWatchClient:
        return cast("CloudWatchClient", self.client("cloudwatch"))

    def sqs(self) -> Any:
        """The SQS client (event-driven ingest; no type stubs are installed for SQS)."""
        return self.client("sqs")

    def autoscaling(self) -> ApplicationAutoScalingClient:
        """Application Auto Scaling (endpoint variants' scalable targets and policies)."""
        return cast("ApplicationAutoScalingClient", self.client("application-autoscaling"))

    def _assumed(self, assumed: AssumedRole) -> boto3.Session:
        sts = self._base.client("sts", region_name=self.region, config=self._config)
        self._hook(sts)

        def fetch() -> dict[str, str]:
            creds = sts.assume_role(**assumed.assume_role_args(ASSUME_ROLE_SECONDS))["Credentials"]
            expiry: datetime = creds["Expiration"]
            return {
                "access_key": creds["AccessKeyId"],
                "secret_key": creds["SecretAccessKey"],
                "token": creds["SessionToken"],
                "expiry_time": expiry.isoformat(),
            }

        # Deferred: the first AssumeRole happens on the first call that needs credentials.
        refreshable = DeferredRefreshableCredentials(refresh_using=fetch, method="sts-assume-role")
        core = botocore_session()
        # botocore has no public setter for refreshable credentials; this is the documented
        # community pattern and keeps auto-refresh (boto3.Session(aws_access_key_id=...) would not).
        core._credentials = refreshable  # type: ignore[attr-defined]
        core.set_config_variable("region", self.region)
        return boto3.Session(botocore_session=core)


def _expect_owner(params: dict[str, Any], model: Any, owner: str) -> None:
    """Add ExpectedBucketOwner to an S3 call whose operation takes it (most do)."""
    members = model.input_shape.members if model.input_shape is not None else {}
    if "ExpectedBucketOwner" in members:
        params.setdefault("ExpectedBucketOwner", owner)
