"""kopf's live copy of a policy loses what nothing reads: `metadata.managedFields` and
kubectl's last-applied-configuration (issue 18: memory per policy)."""

from __future__ import annotations

import asyncio
import logging

import kopf

from retraining_operator import handlers
from retraining_operator.api import API_GROUP

LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
DIFF_BASE = f"{API_GROUP}/last-handled-configuration"


def test_unread_metadata_is_shed_from_the_live_body_and_nothing_else() -> None:
    raw = {
        "metadata": {
            "name": "p",
            "annotations": {"a": "b", LAST_APPLIED: "{}", DIFF_BASE: "{}"},
            "managedFields": [{"manager": "kubectl", "fieldsV1": {"f:spec": {}}}],
        },
        "spec": {"suspend": False},
    }
    body = kopf.Body(raw)
    asyncio.run(handlers.shed_unread_metadata(body=body))
    assert "managedFields" not in raw["metadata"]  # the dict kopf keeps, not a copy
    # kopf's own diff base stays: it compares the next event's body with it.
    assert body["metadata"] == {"name": "p", "annotations": {"a": "b", DIFF_BASE: "{}"}}
    assert body.spec == {"suspend": False}
    asyncio.run(handlers.shed_unread_metadata(body=body))  # idempotent
    asyncio.run(handlers.shed_unread_metadata(body=kopf.Body({})))  # no metadata
    asyncio.run(handlers.shed_unread_metadata(body=kopf.Body({"metadata": {"name": "q"}})))


def test_the_shed_handler_succeeding_is_not_logged_but_everything_else_is() -> None:
    def record(level: int, message: str) -> logging.LogRecord:
        return logging.LogRecord("kopf.objects", level, __file__, 1, message, None, None)

    assert not handlers._quiet_shed(record(logging.INFO, f"Handler '{handlers.SHED}' succeeded."))
    assert handlers._quiet_shed(record(logging.INFO, "Handler 'wake' succeeded."))
    assert handlers._quiet_shed(record(logging.ERROR, f"Handler '{handlers.SHED}' failed."))
