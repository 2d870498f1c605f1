"""The handler's checkpoint writes the status subresource only when the status changed, and
each write is conditional on the object as the pass saw it (then as its last write left it)."""

from __future__ import annotations

from typing import Any

import pytest

from retraining_operator import handlers, kube
from retraining_operator.api import Phase, RetrainingPolicyStatus


def test_unchanged_status_is_not_written(monkeypatch: pytest.MonkeyPatch) -> None:
    writes: list[tuple[str, str, dict[str, Any], kube.Seen | None]] = []

    def patch_status(
        ns: str, name: str, body: dict[str, Any], *, seen: kube.Seen | None = None
    ) -> kube.Seen:
        writes.append((ns, name, body, seen))
        return kube.Seen(str(len(writes) + 1), 1, body)

    monkeypatch.setattr(kube, "patch_status", patch_status)
    stored = RetrainingPolicyStatus(phase=Phase.COLLECTING).to_wire()
    write = handlers._status_writer("vision", "p", kube.Seen("1", 1, stored))

    write(RetrainingPolicyStatus.model_validate(stored))
    assert writes == []

    changed = RetrainingPolicyStatus(phase=Phase.TRAINING)
    write(changed)
    write(changed)  # the same again: no second write
    assert len(writes) == 1
    ns, name, body, seen = writes[0]
    assert (ns, name, body["phase"]) == ("vision", "p", "Training")
    # Unset fields go as nulls so the merge patch removes them (e.g. a finished run).
    assert body["currentRun"] is None
    # Conditional on what the pass read: version, generation and the stored status.
    assert seen == kube.Seen("1", 1, stored)

    write(RetrainingPolicyStatus(phase=Phase.SERVING))
    assert writes[1][3] == kube.Seen("2", 1, writes[0][2])  # then on its own last write
