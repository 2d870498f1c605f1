"""Gateway to SQS: receive (long polling), delete in batches, change visibility, attributes.

Only what event-driven ingest needs (docs/events.md lists the IAM actions). Errors are
mapped like every gateway's (`aws/errors.py`): a throttled or unreachable queue is
`RetryLater`, a missing queue or refused access `NeedsAttention`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from retraining_operator.aws.errors import mapped

MAX_BATCH = 10  # ReceiveMessage's MaxNumberOfMessages and DeleteMessageBatch's limit
LONG_POLL_SECONDS = 20  # the longest WaitTimeSeconds SQS allows


@dataclass(frozen=True)
class Message:
    message_id: str
    receipt_handle: str
    body: str
    receive_count: int  # ApproximateReceiveCount: the redrive policy moves it at maxReceiveCount


def receive(
    client: Any,
    queue_url: str,
    *,
    max_messages: int = MAX_BATCH,
    wait_seconds: int = LONG_POLL_SECONDS,
    visibility_timeout: int | None = None,
) -> list[Message]:
    """Up to `max_messages` messages; waits up to `wait_seconds` for the first one."""
    kwargs: dict[str, Any] = {
        "QueueUrl": queue_url,
        "MaxNumberOfMessages": max(1, min(max_messages, MAX_BATCH)),
        "WaitTimeSeconds": max(0, min(wait_seconds, LONG_POLL_SECONDS)),
        "MessageSystemAttributeNames": ["ApproximateReceiveCount"],
    }
    if visibility_timeout is not None:
        kwargs["VisibilityTimeout"] = visibility_timeout
    with mapped("ReceiveMessage"):
        response = client.receive_message(**kwargs)
    return [
        Message(
            message_id=str(item.get("MessageId", "")),
            receipt_handle=str(item.get("ReceiptHandle", "")),
            body=str(item.get("Body", "")),
            receive_count=_int((item.get("Attributes") or {}).get("ApproximateReceiveCount")),
        )
        for item in response.get("Messages") or []
    ]


def delete(client: Any, queue_url: str, messages: Sequence[Message]) -> list[str]:
    """Delete messages (batches of 10); returns the ids SQS did not delete (retried later)."""
    failed: list[str] = []
    for start in range(0, len(messages), MAX_BATCH):
        chunk = messages[start : start + MAX_BATCH]
        entries = [
            {"Id": str(index), "ReceiptHandle": message.receipt_handle}
            for index, message in enumerate(chunk)
        ]
        with mapped("DeleteMessageBatch"):
            response = client.delete_message_batch(QueueUrl=queue_url, Entries=entries)
        failed.extend(chunk[int(item["Id"])].message_id for item in response.get("Failed") or [])
    return failed


def change_visibility(client: Any, queue_url: str, message: Message, seconds: int) -> None:
    """Make a received message visible again after `seconds` (0: at once)."""
    with mapped("ChangeMessageVisibility"):
        client.change_message_visibility(
            QueueUrl=queue_url, ReceiptHandle=message.receipt_handle, VisibilityTimeout=seconds
        )


def queue_attributes(client: Any, queue_url: str, names: Sequence[str]) -> dict[str, str]:
    """Some of the queue's attributes (e.g. VisibilityTimeout, RedrivePolicy)."""
    with mapped("GetQueueAttributes"):
        response = client.get_queue_attributes(QueueUrl=queue_url, AttributeNames=list(names))
    return {str(k): str(v) for k, v in (response.get("Attributes") or {}).items()}


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0
