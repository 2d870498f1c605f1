"""kopf's live copy of a policy loses what nothing reads (`metadata.managedFields`, kubectl's
last-applied-configuration) and shares its repeated strings (issue 18: memory per policy)."""

from __future__ import annotations

import asyncio
import copy
import logging
from typing import Any

import kopf

from retraining_operator import handlers
from retraining_operator.api import API_GROUP

LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
DIFF_BASE = f"{API_GROUP}/last-handled-configuration"


def _raw(name: str) -> dict[str, Any]:
    # Built at run time: equal strings, distinct objects (as two JSON parses make them).
    return {
        "apiVersion": f"{API_GROUP}/v1alpha1",
        "metadata": {
            "name": name,
            "annotations": {"a": "b", LAST_APPLIED: "{}", DIFF_BASE: "{}"},
            "managedFields": [{"manager": "kubectl", "fieldsV1": {"f:spec": {}}}],
        },
        "spec": {"labels": {"classes": ["".join(["c", "at"]), "dog"]}, "suspend": False},
        "status": {"phase": "".join(["Coll", "ecting"])},
    }


def _slim(raw: dict[str, Any]) -> None:
    asyncio.run(handlers.slim_live_body(event={"type": "MODIFIED", "object": raw}))


def test_unread_metadata_is_shed_from_the_live_body_and_nothing_else() -> None:
    raw = _raw("p")
    body = kopf.Body(raw)  # kopf's live body wraps the event's object
    _slim(raw)
    # kopf's own diff base stays: it compares the next event's body with it.
    assert body["metadata"] == {"name": "p", "annotations": {"a": "b", DIFF_BASE: "{}"}}
    assert body.spec == {"labels": {"classes": ["cat", "dog"]}, "suspend": False}
    assert body.status == {"phase": "Collecting"}
    before = copy.deepcopy(raw)
    _slim(raw)  # idempotent
    assert raw == before
    _slim({})  # no metadata
    _slim({"metadata": {"name": "q"}})
    asyncio.run(handlers.slim_live_body(event={"type": None, "object": None}))


def test_two_bodies_share_their_keys_and_short_strings() -> None:
    one, two = _raw("one"), _raw("two")
    assert one["spec"]["labels"]["classes"][0] is not two["spec"]["labels"]["classes"][0]
    _slim(one)
    _slim(two)
    assert one["spec"]["labels"]["classes"][0] is two["spec"]["labels"]["classes"][0]
    assert one["status"]["phase"] is two["status"]["phase"]
    key = next(k for k in one["spec"] if k == "labels")
    assert key is next(k for k in two["spec"] if k == "labels")


def test_a_part_is_replaced_whole_not_rebuilt_in_place() -> None:
    raw = _raw("p")
    spec = raw["spec"]  # what a pass in its worker thread may be reading right now
    _slim(raw)
    assert spec == {"labels": {"classes": ["cat", "dog"]}, "suspend": False}
    assert raw["spec"] is not spec
    assert raw["spec"] == spec


def test_the_slim_handler_succeeding_is_not_logged_but_everything_else_is() -> None:
    def record(level: int, message: str) -> logging.LogRecord:
        return logging.LogRecord("kopf.objects", level, __file__, 1, message, None, None)

    assert not handlers._quiet_slim(record(logging.INFO, f"Handler '{handlers.SLIM}' succeeded."))
    assert handlers._quiet_slim(record(logging.INFO, "Handler 'wake' succeeded."))
    assert handlers._quiet_slim(record(logging.ERROR, f"Handler '{handlers.SLIM}' failed."))
