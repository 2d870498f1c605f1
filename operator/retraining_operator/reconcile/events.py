"""Pure rules of event-driven ingest: which queue a policy may name, what a message says.

A2I publishes one EventBridge event per human loop that ends (source `aws.sagemaker`,
detail-type `SageMaker A2I HumanLoop Status Change`); an EventBridge rule sends it to an
SQS queue, so the SQS message body is the EventBridge envelope as JSON:

    {"version": "0", "id": ..., "detail-type": "SageMaker A2I HumanLoop Status Change",
     "source": "aws.sagemaker", "account": "123456789012", "time": ..., "region": ...,
     "resources": [<humanLoopArn>],
     "detail": {"humanLoopName": ..., "humanLoopArn": ..., "flowDefinitionArn": ...,
                "humanLoopStatus": "Completed", "creationTime": "...Z",
                "failureCode": ..., "failureReason": ...,
                "humanLoopOutput": {"outputS3Uri": "s3://.../output.json"}}}

Delivery is at least once and unordered: nothing here is trusted to be new or in order (the
ledger dedupes). A message is either a `LoopEvent` or a `Rejected` with the reason; nothing
raises. Bodies are size-checked before parsing.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

SOURCE = "aws.sagemaker"
DETAIL_TYPE = "SageMaker A2I HumanLoop Status Change"
# An EventBridge event is at most 256 KiB; an A2I status change is well under 4 KiB.
MAX_MESSAGE_BYTES = 64 * 1024
COMPLETED = "Completed"
# Statuses that end a loop without an output (A2I reports expiry as Failed; "Expired" is
# accepted so that a loop reported that way is counted, not rejected).
NOT_COMPLETED = frozenset({"Failed", "Stopped", "Expired"})
_LOOP_NAME = re.compile(r"^[a-z0-9](-*[a-z0-9]){0,62}$")
_FLOW_ARN = re.compile(
    r"^arn:(?P<partition>aws[a-z\-]*):sagemaker:(?P<region>[a-z0-9\-]+):(?P<account>[0-9]{12}):"
    r"flow-definition/[a-z0-9](-*[a-z0-9]){0,62}$"
)
_QUEUE_URL = re.compile(
    r"^(?P<scheme>https?)://(?P<host>[A-Za-z0-9.\-]{1,253})(:[0-9]{1,5})?/"
    r"(?P<account>[0-9]{12})/(?P<name>[A-Za-z0-9_\-]{1,80}(\.fifo)?)$"
)
_REGION = r"[a-z]{2}(?:-[a-z]+)+-[0-9]"
# The hosts AWS names SQS queues by, and the region each says.
_AWS_QUEUE_HOST = re.compile(
    rf"""^(?:
        # sqs.<region>.amazonaws.com (and .com.cn), FIPS, and VPC endpoint names
        (?:[a-z0-9-]+\.)*sqs(?:-fips)?\.(?P<region>{_REGION})(?:\.vpce)?\.amazonaws\.com(?:\.cn)?
        # legacy: <region>.queue.amazonaws.com
        | (?P<legacy>{_REGION})\.queue\.amazonaws\.com(?:\.cn)?
        # legacy, before regions had their own host: us-east-1
        | (?P<first>queue)\.amazonaws\.com
    )$""",
    re.VERBOSE,
)
FIRST_QUEUE_REGION = "us-east-1"


@dataclass(frozen=True)
class QueueAddress:
    url: str
    account: str
    name: str
    region: str | None  # None: a host that does not say (an endpoint override)

    def arn(self, partition: str, region: str) -> str:
        """The queue's ARN; `region` where the host does not say (an endpoint override's
        queue is in the region the client signs for, the policy's)."""
        return f"arn:{partition}:sqs:{self.region or region}:{self.account}:{self.name}"


def parse_queue_url(url: str) -> QueueAddress | None:
    """A queue URL's account, name and region (None: not a queue URL).

    Every form AWS has used: `https://sqs.<region>.amazonaws.com/<account>/<name>` (also
    `.amazonaws.com.cn`, FIPS and VPC endpoint names), the legacy
    `https://<region>.queue.amazonaws.com/...` and `https://queue.amazonaws.com/...`
    (us-east-1). Any other host (an endpoint override) names no region.
    """
    match = _QUEUE_URL.match(url)
    if match is None:
        return None
    host = _AWS_QUEUE_HOST.match(match["host"].lower())
    region = None
    if host is not None:
        region = host["region"] or host["legacy"] or FIRST_QUEUE_REGION
    return QueueAddress(url=url, account=match["account"], name=match["name"], region=region)


def queue_problem(url: str, flow_definition_arn: str, region: str) -> str | None:
    """Why the policy may not consume this queue (None: it may).

    The queue must live in the flow definition's account and the policy's region: A2I's
    events reach only queues there, so a queue anywhere else is a typo or a policy reading
    another tenant's queue.
    """
    address = parse_queue_url(url)
    if address is None:
        return f"sqsQueueUrl {url[:200]!r} is not an SQS queue URL"
    flow = _FLOW_ARN.match(flow_definition_arn)
    if flow is None:
        return f"flowDefinitionArn {flow_definition_arn[:200]!r} is not a flow definition ARN"
    if address.account != flow["account"]:
        return (
            f"sqsQueueUrl names account {address.account}, but the flow definition is in "
            f"account {flow['account']}: A2I's events reach only queues in its own account"
        )
    if address.region is not None and address.region != region:
        return f"sqsQueueUrl names region {address.region}, but spec.aws.region is {region}"
    if address.region is not None and url.startswith("http://"):
        # Plain HTTP is for endpoint overrides (stand-ins, proxies); AWS itself is HTTPS.
        return "sqsQueueUrl must use https:// for an amazonaws.com queue"
    return None


@dataclass(frozen=True)
class LoopEvent:
    """One human loop that ended, as its status-change event says."""

    name: str
    status: str  # Completed | Failed | Stopped | Expired
    created: datetime
    flow_definition_arn: str
    output_s3_uri: str | None
    failure_reason: str | None
    account: str
    region: str

    @property
    def completed(self) -> bool:
        return self.status == COMPLETED


@dataclass(frozen=True)
class Rejected:
    """A message that is not an A2I status change this operator can act on."""

    reason: str  # a short token for counting: Oversized, NotJson, NotA2I, Malformed, ...
    detail: str


def parse_message(body: str | bytes) -> LoopEvent | Rejected:
    """The loop event in an SQS message body, or why there is none."""
    size = len(body.encode("utf-8", "replace") if isinstance(body, str) else body)
    if size > MAX_MESSAGE_BYTES:
        return Rejected("Oversized", f"{size} bytes, more than {MAX_MESSAGE_BYTES}")
    try:
        envelope = json.loads(body)
    except (ValueError, RecursionError):
        return Rejected("NotJson", "the body is not JSON")
    if not isinstance(envelope, dict):
        return Rejected("NotJson", "the body is not a JSON object")
    if envelope.get("source") != SOURCE or envelope.get("detail-type") != DETAIL_TYPE:
        return Rejected(
            "NotA2I",
            f"source {_short(envelope.get('source'))}, detail-type "
            f"{_short(envelope.get('detail-type'))}",
        )
    detail = envelope.get("detail")
    if not isinstance(detail, dict):
        return Rejected("Malformed", "no detail object")
    return _loop_event(envelope, detail)


def _loop_event(envelope: dict[str, Any], detail: dict[str, Any]) -> LoopEvent | Rejected:
    name = detail.get("humanLoopName")
    if not isinstance(name, str) or not _LOOP_NAME.match(name):
        return Rejected("Malformed", f"humanLoopName {_short(name)} is not a loop name")
    flow_arn = detail.get("flowDefinitionArn")
    flow = _FLOW_ARN.match(flow_arn) if isinstance(flow_arn, str) else None
    if flow is None or not isinstance(flow_arn, str):
        return Rejected("Malformed", f"flowDefinitionArn {_short(flow_arn)} is not an ARN")
    account, region = envelope.get("account"), envelope.get("region")
    if account != flow["account"] or region != flow["region"]:
        return Rejected(
            "Foreign",
            f"the envelope's account/region {_short(account)}/{_short(region)} is not the "
            "flow definition's",
        )
    status = detail.get("humanLoopStatus")
    if status != COMPLETED and status not in NOT_COMPLETED:
        return Rejected("Malformed", f"humanLoopStatus {_short(status)} does not end a loop")
    created = _timestamp(detail.get("creationTime"))
    if created is None:
        return Rejected("Malformed", f"creationTime {_short(detail.get('creationTime'))}")
    output = detail.get("humanLoopOutput")
    uri = output.get("outputS3Uri") if isinstance(output, dict) else None
    if status == COMPLETED and (not isinstance(uri, str) or not uri.startswith("s3://")):
        return Rejected("Malformed", "a Completed loop without humanLoopOutput.outputS3Uri")
    reason = detail.get("failureReason")
    return LoopEvent(
        name=name,
        status=str(status),
        created=created,
        flow_definition_arn=flow_arn,
        output_s3_uri=uri if isinstance(uri, str) else None,
        failure_reason=reason[:1024] if isinstance(reason, str) else None,
        account=flow["account"],
        region=flow["region"],
    )


def _timestamp(value: Any) -> datetime | None:
    if not isinstance(value, str) or len(value) > 40:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
