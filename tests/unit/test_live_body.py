"""kopf's live copy of a policy loses `metadata.managedFields` (issue 18: memory per policy)."""

from __future__ import annotations

import kopf

from retraining_operator import handlers


def test_managed_fields_are_shed_from_the_live_body_and_nothing_else() -> None:
    raw = {
        "metadata": {
            "name": "p",
            "annotations": {"a": "b"},
            "managedFields": [{"manager": "kubectl", "fieldsV1": {"f:spec": {}}}],
        },
        "spec": {"suspend": False},
    }
    body = kopf.Body(raw)
    handlers._shed_managed_fields(body)
    assert "managedFields" not in raw["metadata"]  # the dict kopf keeps, not a copy
    assert body["metadata"] == {"name": "p", "annotations": {"a": "b"}}
    assert body.spec == {"suspend": False}
    handlers._shed_managed_fields(body)  # idempotent
    handlers._shed_managed_fields(kopf.Body({}))  # no metadata: nothing to do
