"""AWS sessions: per identity (region, optionally an assumed role) one set of cached clients.

Every client uses botocore's standard retry mode (bounded exponential backoff with
jitter, throttling-aware) and explicit timeouts. An assumed role's credentials are
refreshable: botocore renews them before they expire, so a long ingest keeps going
across credential rotation. The first AssumeRole happens on the first call, so a role
that cannot be assumed fails that call with a typed error (AccessDenied, Throttled)
instead of failing the session's construction.

Throttled responses are counted (`take_throttled`) even when botocore's retries absorb
them, so the controller can report sustained throttling as an Event.

Whoever builds a `ClientPool` may give it a guard (`before_send`) that every request of its
clients passes first, retries included: the operator gives it its leadership fence, so a
process that does not hold the Lease sends nothing. The gateways themselves know nothing
of leadership.
"""

from __future__ import annotations

import hashlib
import os
import re
import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol, cast

import boto3
from botocore.config import Config
from botocore.credentials import DeferredRefreshableCredentials
from botocore.loaders import Loader
from botocore.session import Session as BotocoreSession
from botocore.session import get_session

from retraining_operator.aws.budget import CallBudget
from retraining_operator.aws.errors import is_throttle_code

__all__ = ["CallBudget"]

if TYPE_CHECKING:
    from mypy_boto3_application_autoscaling import ApplicationAutoScalingClient
    from mypy_boto3_cloudwatch import CloudWatchClient
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sagemaker import SageMakerClient
    from mypy_boto3_sagemaker_a2i_runtime import AugmentedAIRuntimeClient

DEFAULT_MAX_ATTEMPTS = 8
DEFAULT_POOL = 16
DEFAULT_SESSION_NAME = "a2i-retraining-operator"
ASSUME_ROLE_SECONDS = 3600

# Called with what is about to be sent ("AWS call") before every request; raising stops it.
BeforeSend = Callable[[str], None]


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


@dataclass(frozen=True)
class ClientSettings:
    """How a session's clients call AWS: botocore's attempts per call (standard retry
    mode), connections per client, the operator-wide call budget every send waits for, and
    who counts the calls (metrics live outside aws/)."""

    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    pool: int = DEFAULT_POOL
    budget: CallBudget | None = None
    observer: CallObserver | None = None


DEFAULT_SETTINGS = ClientSettings()

MAX_SESSION_NAME = 64


def role_session_name(namespace: str) -> str:
    """STS RoleSessionName naming the namespace a session acts for (2-64 chars of
    [\\w+=,.@-]): a readable (possibly shortened) `rtp-<namespace>` and a hash of the full
    name, so two long names that share a prefix never share a session name (CloudTrail tells
    them apart). One session per namespace, not per policy: every policy of a namespace then
    shares one set of clients and one credential refresh (the policy is named on everything
    the operator creates in AWS, by tags)."""
    digest = hashlib.sha256(namespace.encode()).hexdigest()[:10]
    readable = re.sub(r"[^\w+=,.@-]", "-", f"rtp-{namespace}")
    return f"{readable[: MAX_SESSION_NAME - len(digest) - 1]}-{digest}"


@dataclass(frozen=True)
class AssumedRole:
    """The role a session assumes, as whom (session name and tags), with which ExternalId."""

    role_arn: str
    session_name: str = DEFAULT_SESSION_NAME
    external_id: str | None = None
    # STS session tags, e.g. (("namespace", "team-a"),): the role's
    # trust and permission policies can require them (aws:PrincipalTag/namespace).
    tags: tuple[tuple[str, str], ...] = ()

    @classmethod
    def of(
        cls, role_arn: str | None, session_name: str = DEFAULT_SESSION_NAME
    ) -> AssumedRole | None:
        """A plain role to assume (`spec.aws.roleArn`), None when there is none."""
        return cls(role_arn, session_name) if role_arn is not None else None

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


class _Clients:
    """One AWS identity's boto3 session and clients (clients are thread-safe), shared by
    every policy that acts as that identity: the memory of an idle operator grows with its
    AWS identities, not with its policies."""

    def __init__(
        self, identity: Identity, base: boto3.Session | None, before_send: BeforeSend | None
    ) -> None:
        self.identity = identity
        self._before_send = before_send
        self._config = client_config(max_attempts=identity.max_attempts, pool=identity.pool)
        self._base = base or boto3.Session(
            botocore_session=botocore_session(), region_name=identity.region
        )
        self._clients: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._throttled = 0  # every throttled response so far (policies read differences)
        self._throttled_lock = threading.Lock()
        self.users = 0  # AwsSession handles holding this entry (ClientPool's reference count)
        # Last: `_assumed` hooks the STS client, which needs everything above.
        assumed = identity.assumed
        self._session = self._assumed(assumed) if assumed is not None else self._base

    def client(self, service: str) -> Any:
        with self._lock:
            if service not in self._clients:
                client = self._session.client(  # type: ignore[call-overload]
                    service, region_name=self.identity.region, config=self._config
                )
                self._hook(client)
                owner = self.identity.expected_bucket_owner
                if service == "s3" and owner is not None:
                    client.meta.events.register(
                        "provide-client-params.s3.*",
                        lambda params, model, **_: _expect_owner(params, model, owner),
                    )
                self._clients[service] = client
            return self._clients[service]

    def throttled_total(self) -> int:
        with self._throttled_lock:
            return self._throttled

    def _hook(self, client: Any) -> None:
        events = client.meta.events
        service = client.meta.service_model.service_name
        guard = self._before_send
        if guard is not None:
            # First: e.g. a process that lost (or never held) the leader Lease sends nothing.
            events.register("before-send", lambda **_: guard("AWS call"))
        budget = self.identity.budget
        if budget is not None:
            events.register("before-send", lambda **_: budget.acquire())
        observer = self.identity.observer

        def needs_retry(response: Any = None, operation: Any = None, **_: Any) -> None:
            # Emitted after every attempt, before botocore decides whether to retry it.
            if not response:
                return
            code = str(response[1].get("Error", {}).get("Code", ""))
            if is_throttle_code(code):
                with self._throttled_lock:
                    self._throttled += 1
                if observer is not None and operation is not None:
                    observer.throttled(service, operation.name)

        events.register("needs-retry", needs_retry)
        if observer is not None:

            def before_call(model: Any, **_: Any) -> None:
                observer.called(service, model.name)

            def after_call(model: Any, parsed: dict[str, Any], **_: Any) -> None:
                code = parsed.get("Error", {}).get("Code")
                if code:
                    observer.failed(service, model.name, str(code))

            def after_call_error(exception: BaseException, event_name: str = "", **_: Any) -> None:
                # botocore emits this one without the operation model (only the exception
                # and the request context): the operation is the event name's last part.
                observer.failed(service, event_name.rsplit(".", 1)[-1], type(exception).__name__)

            events.register("before-call", before_call)
            events.register("after-call", after_call)
            events.register("after-call-error", after_call_error)

    def _assumed(self, assumed: AssumedRole) -> boto3.Session:
        region = self.identity.region
        sts = self._base.client("sts", region_name=region, config=self._config)
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
        core.set_config_variable("region", region)
        return boto3.Session(botocore_session=core)


@dataclass(frozen=True)
class Identity:
    """Everything a set of clients is made of: who calls (region, assumed role with its
    session name and tags), which buckets it expects, how it retries, and which budget and
    observer its calls go through (compared by identity: they are operator-wide objects)."""

    region: str
    assumed: AssumedRole | None = None
    expected_bucket_owner: str | None = None
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    pool: int = DEFAULT_POOL
    budget: CallBudget | None = field(default=None, compare=False)
    observer: CallObserver | None = field(default=None, compare=False)

    def key(self) -> tuple[Any, ...]:
        return (
            self.region,
            self.assumed,
            self.expected_bucket_owner,
            self.max_attempts,
            self.pool,
            id(self.budget),
            id(self.observer),
        )


class ClientPool:
    """The operator's clients, one set per `Identity`, reference-counted by the `AwsSession`
    handles that use them: the last handle's release (its `close`, or its garbage
    collection) drops the set, so a deleted policy leaves nothing behind.

    `before_send` runs before every request of every client of the pool (the operator's
    leadership fence)."""

    def __init__(self, *, before_send: BeforeSend | None = None) -> None:
        self._before_send = before_send
        self._lock = threading.Lock()
        self._entries: dict[tuple[Any, ...], _Clients] = {}

    def acquire(self, identity: Identity) -> _Clients:
        key = identity.key()
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                entry = self._entries[key] = _Clients(identity, None, self._before_send)
            entry.users += 1
            return entry

    def release(self, entry: _Clients) -> None:
        key = entry.identity.key()
        with self._lock:
            entry.users -= 1
            if entry.users <= 0 and self._entries.get(key) is entry:
                del self._entries[key]

    def identities(self) -> int:
        """How many distinct identities hold clients now."""
        with self._lock:
            return len(self._entries)

    def users(self) -> int:
        """How many AwsSession handles hold clients now."""
        with self._lock:
            return sum(entry.users for entry in self._entries.values())


class AwsSession:
    """AWS access for one policy: region, optional assumed role, cached clients.

    With a `ClientPool` the clients are the pool's, shared with every other session of the
    same identity (a handle costs a few hundred bytes) and pass the pool's guard; without one
    they are this session's own, unguarded (tools and tests that point boto3 at different
    endpoints over time)."""

    def __init__(
        self,
        region: str,
        *,
        assumed: AssumedRole | None = None,
        expected_bucket_owner: str | None = None,
        clients: ClientPool | None = None,
        base: boto3.Session | None = None,
        settings: ClientSettings = DEFAULT_SETTINGS,
    ) -> None:
        """`assumed`: the role to act as (a tenant's, with session tags and ExternalId; or
        `AssumedRole.of(spec.aws.roleArn, name)`), None for the process's own identity.
        `expected_bucket_owner`: every S3 call that takes ExpectedBucketOwner sends it, so a
        bucket owned by another account fails with AccessDenied instead of being read."""
        identity = Identity(
            region,
            assumed,
            expected_bucket_owner,
            settings.max_attempts,
            settings.pool,
            settings.budget,
            settings.observer,
        )
        self.region = region
        self.role_arn = assumed.role_arn if assumed is not None else None
        self.expected_bucket_owner = expected_bucket_owner
        self._release: weakref.finalize[[_Clients], AwsSession] | None = None
        if clients is not None and base is None:
            self._clients = clients.acquire(identity)
            # Released once: by `close`, or when the handle is garbage-collected.
            self._release = weakref.finalize(self, clients.release, self._clients)
        else:
            self._clients = _Clients(identity, base, None)
        self._throttled_seen = self._clients.throttled_total()

    def close(self) -> None:
        """Give the clients back to the pool (idempotent; a no-op for private clients)."""
        if self._release is not None:
            self._release()

    def client(self, service: str) -> Any:
        """A cached, thread-safe boto3 client (clients are safe to share across threads)."""
        return self._clients.client(service)

    def take_throttled(self) -> int:
        """How many throttled responses this session's identity received since this session
        last asked (every attempt counts, also those botocore retried successfully)."""
        total = self._clients.throttled_total()
        count, self._throttled_seen = total - self._throttled_seen, total
        return count

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


def _expect_owner(params: dict[str, Any], model: Any, owner: str) -> None:
    """Add ExpectedBucketOwner to an S3 call whose operation takes it (most do)."""
    members = model.input_shape.members if model.input_shape is not None else {}
    if "ExpectedBucketOwner" in members:
        params.setdefault("ExpectedBucketOwner", owner)
