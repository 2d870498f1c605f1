"""The handler's checkpoint writes the status subresource only when the status changed."""

from __future__ import annotations

from typing import Any

import pytest

from retraining_operator import handlers, kube
from retraining_operator.api import Phase, RetrainingPolicyStatus


def test_unchanged_status_is_not_written(monkeypatch: pytest.MonkeyPatch) -> None:
    writes: list[tuple[str, str, dict[str, Any]]] = []
    monkeypatch.setattr(
        kube, "patch_status", lambda ns, name, body: writes.append((ns, name, body))
    )
    stored = RetrainingPolicyStatus(phase=Phase.COLLECTING).to_wire()
    write = handlers._status_writer("vision", "p", stored)

    write(RetrainingPolicyStatus.model_validate(stored))
    assert writes == []

    changed = RetrainingPolicyStatus(phase=Phase.TRAINING)
    write(changed)
    write(changed)  # the same again: no second write
    assert len(writes) == 1
    ns, name, body = writes[0]
    assert (ns, name, body["phase"]) == ("vision", "p", "Training")
    # Unset fields go as nulls so the merge patch removes them (e.g. a finished run).
    assert body["currentRun"] is None
