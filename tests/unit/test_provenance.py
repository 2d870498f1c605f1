"""The ledger seal (issue 27): what the operator wrote verifies; anything else does not."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from retraining_operator import metrics
from retraining_operator.reconcile.ledger import (
    MAX_REVIEWERS,
    Ledger,
    LedgerTampered,
    LoopOutcome,
    PendingSegment,
)
from retraining_operator.reconcile.provenance import Keyring, SealKey, WeakKey

T0 = datetime(2026, 3, 1, tzinfo=UTC)
KEY = SealKey(b"a" * 32)
RING = Keyring(KEY)


def _ledger() -> Ledger:
    ledger = Ledger(owner={"policyUid": "p1", "flowDefinitionArn": "arn:f"})
    segment = PendingSegment("ab" * 32, 2, 2, T0)
    ledger.record(
        [LoopOutcome("l1", T0, segment.id), LoopOutcome("l2", T0, segment.id)], segment=segment
    )
    return ledger


def test_a_sealed_ledger_verifies_for_its_policy_and_round_trips() -> None:
    body = _ledger().to_json(RING.for_policy("p1"))
    parsed = Ledger.from_json(body, RING.for_policy("p1"))
    assert parsed.sealed
    assert parsed.pending[0].verified(RING.for_policy("p1"))
    assert parsed.outcome("l1") == parsed.pending[0].id


def test_it_does_not_verify_for_another_policy_or_key() -> None:
    body = _ledger().to_json(RING.for_policy("p1"))
    with pytest.raises(LedgerTampered):
        Ledger.from_json(body, RING.for_policy("p2"))
    with pytest.raises(LedgerTampered):
        Ledger.from_json(body, Keyring(SealKey(b"b" * 32)).for_policy("p1"))


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda d: d["pending"].append({**d["pending"][0], "sha256": "cd" * 32}),
         "PendingSegmentTampered"),
        (lambda d: d["pending"][0].update(samples=3), "PendingSegmentTampered"),
        (lambda d: d.update(loops=d["loops"] + ";l9 0 F"), "LedgerTampered"),
        (lambda d: d.update(outputPrefix="s3://elsewhere/x"), "LedgerTampered"),
        (lambda d: d["totals"].update(samples=99), "LedgerTampered"),
        (lambda d: d.pop("mac"), "LedgerTampered"),
        (lambda d: d.update(mac="00000000:" + "0" * 64), "LedgerTampered"),
    ],
)  # fmt: skip
def test_any_change_by_someone_else_is_named(change: object, reason: str) -> None:
    document = json.loads(_ledger().to_json(RING.for_policy("p1")))
    change(document)  # type: ignore[operator]
    with pytest.raises(LedgerTampered) as caught:
        Ledger.from_json(json.dumps(document).encode(), RING.for_policy("p1"))
    assert caught.value.reason == reason


def test_reformatting_a_sealed_ledger_keeps_it_valid() -> None:
    document = json.loads(_ledger().to_json(RING.for_policy("p1")))
    pretty = json.dumps(dict(reversed(document.items())), indent=2).encode()
    assert Ledger.from_json(pretty, RING.for_policy("p1")).sealed


def test_a_rotated_key_still_verifies_and_the_next_write_uses_the_new_one() -> None:
    old = _ledger().to_json(RING.for_policy("p1"))
    rotated = Keyring(SealKey(b"n" * 32), previous=(KEY,))
    ledger = Ledger.from_json(old, rotated.for_policy("p1"))
    new = json.loads(ledger.to_json(rotated.for_policy("p1")))
    assert new["mac"].startswith(SealKey(b"n" * 32).key_id + ":")
    with pytest.raises(LedgerTampered):  # the old key alone no longer verifies it
        Ledger.from_json(json.dumps(new).encode(), RING.for_policy("p1"))


def test_an_unsealed_version_1_ledger_parses_as_unsealed() -> None:
    document = json.loads(_ledger().to_json())
    document["version"] = 1
    assert not Ledger.from_json(json.dumps(document).encode(), RING.for_policy("p1")).sealed


def test_keys_are_never_printed_and_must_be_long_enough() -> None:
    assert "a" * 16 not in repr(KEY)
    with pytest.raises(WeakKey):
        SealKey(b"short")


def test_reviewers_are_bounded_and_forgotten_when_inactive() -> None:
    ledger = Ledger()
    for i in range(MAX_REVIEWERS + 50):
        ledger.record_agreement([(f"w{i:04d}", 1.0)], T0 + timedelta(seconds=i))
    assert len(ledger.reviewers) == MAX_REVIEWERS
    assert "w0000" not in ledger.reviewers  # the least recently seen went first
    later = T0.replace(month=5)  # two months on: everyone but the new one is inactive
    ledger.record_agreement([("fresh", 0.5)], later)
    assert list(ledger.reviewers) == ["fresh"]
    again = Ledger.from_json(ledger.to_json(RING.for_policy("")), RING.for_policy(""))
    assert again.reviewer_seen == ledger.reviewer_seen
    assert again.active_reviewers(5) == ["fresh"]


def test_reviewer_series_follow_the_active_set_and_leave_with_it() -> None:
    def series() -> set[str]:
        return {
            sample.labels["worker"]
            for family in metrics.REGISTRY.collect()
            if family.name in ("rtp_reviewer_agreement", "rtp_reviewer_images")
            for sample in family.samples
            if sample.labels.get("policy") == "bounded"
        }

    shown = metrics.set_reviewers("ns", "bounded", {"a": (3, 0.9), "b": (1, 0.5)}, frozenset())
    assert series() == {"a", "b"}
    shown = metrics.set_reviewers("ns", "bounded", {"b": (2, 0.6), "c": (1, 1.0)}, shown)
    assert series() == {"b", "c"}
    assert shown == {"b", "c"}
