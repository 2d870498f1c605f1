"""reconcile/ingest.py and reconcile/ledger.py: the watermark rule, triage, triggers, ledger."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from retraining_operator.api import DatasetSpec
from retraining_operator.reconcile import ingest as rules
from retraining_operator.reconcile.ledger import (
    FAILED,
    QUARANTINED,
    Ledger,
    LedgerCorrupt,
    LoopOutcome,
    PendingSegment,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Loop:
    name: str
    status: str
    created: datetime


def _segment(n: int, sha: str = "a" * 64, at: datetime = T0) -> PendingSegment:
    return PendingSegment(sha256=sha, samples=n, loops=n, added_at=at)


# -- the watermark rule, simulated ------------------------------------------------------------


@dataclass
class SimLoop:
    name: str
    created: float  # seconds after T0
    visible_after: float  # listing lag: A2I shows it in listings only from then on
    finishes: float | None  # None: never settles during the simulation
    outcome: str  # Completed | Failed | Stopped


@st.composite
def worlds(draw: st.DrawFn) -> tuple[list[SimLoop], list[float], float]:
    lookback = draw(st.sampled_from([60.0, 600.0, 3600.0]))
    count = draw(st.integers(min_value=1, max_value=60))
    loops = []
    for i in range(count):
        created = draw(st.floats(min_value=0, max_value=20_000))
        lag = draw(st.floats(min_value=0, max_value=lookback * 0.9))
        # Reviews may take far longer than the lookback.
        duration = draw(st.floats(min_value=0, max_value=40_000))
        outcome = draw(st.sampled_from(["Completed", "Completed", "Failed", "Stopped"]))
        loops.append(SimLoop(f"loop-{i}", created, created + lag, created + duration, outcome))
    polls = sorted(draw(st.lists(st.floats(0, 70_000), min_size=1, max_size=40)))
    return loops, [*polls, 200_000.0], lookback  # a last poll after everything settled


def _status(loop: SimLoop, at: float) -> str:
    if loop.finishes is not None and at >= loop.finishes:
        return loop.outcome
    return "InProgress"


@settings(max_examples=300, deadline=None)
@given(world=worlds())
def test_every_settled_loop_is_ingested_exactly_once(
    world: tuple[list[SimLoop], list[float], float],
) -> None:
    loops, polls, lookback_s = world
    lookback = timedelta(seconds=lookback_s)
    ledger = Ledger()
    ingested: list[str] = []
    for at in polls:
        start = rules.listing_start(ledger.watermark, ledger.horizon, lookback)
        listed_at = T0 + timedelta(seconds=at)
        listing = [
            Loop(loop.name, _status(loop, at), T0 + timedelta(seconds=loop.created))
            for loop in loops
            if loop.visible_after <= at
            and (start is None or T0 + timedelta(seconds=loop.created) > start)
        ]
        found = rules.triage(listing, ledger, set())
        outcomes = [
            LoopOutcome(item.name, item.created, "0123456789abcdef") for item in found.fetch
        ]
        outcomes += [LoopOutcome(item.name, item.created, FAILED) for item in found.failed]
        segment = _segment(len(found.fetch), sha="0123456789abcdef" + "0" * 48, at=listed_at)
        ledger.record(outcomes, segment=segment if found.fetch else None)
        ingested += [item.name for item in found.fetch]
        watermark = rules.next_watermark(
            ledger.watermark, listed_at, [item.created for item in found.unsettled]
        )
        ledger.advance(watermark, start)

    completed = {loop.name for loop in loops if loop.outcome == "Completed"}
    assert sorted(ingested) == sorted(completed)  # none lost, none twice
    assert len(ingested) == len(set(ingested))


def test_watermark_holds_at_the_oldest_unsettled_loop_and_never_goes_back() -> None:
    listed_at = T0 + timedelta(hours=5)
    held = rules.next_watermark(None, listed_at, [T0 + timedelta(hours=1), T0 + timedelta(hours=3)])
    assert held == T0 + timedelta(hours=1)
    assert rules.next_watermark(held, listed_at, []) == listed_at
    assert rules.next_watermark(listed_at, listed_at, [T0]) == listed_at  # never backwards


def test_listing_start_uses_lookback_but_not_before_the_horizon() -> None:
    day = timedelta(hours=24)
    assert rules.listing_start(None, None, day) is None
    assert rules.listing_start(T0, None, day) == T0 - day
    horizon = T0 - timedelta(hours=2)
    assert rules.listing_start(T0, horizon, day) == horizon
    assert rules.listing_start(T0, horizon, timedelta(hours=1)) == T0 - timedelta(hours=1)


def test_triage_sorts_and_dedupes() -> None:
    ledger = Ledger()
    ledger.record([LoopOutcome("done", T0, QUARANTINED)])
    seen: set[str] = set()
    page = [
        Loop("new", "Completed", T0),
        Loop("done", "Completed", T0),
        Loop("bad", "Failed", T0),
        Loop("halt", "Stopped", T0),
        Loop("busy", "InProgress", T0),
        Loop("stopping", "Stopping", T0),
        Loop("new", "Completed", T0),
    ]
    result = rules.triage(page, ledger, seen)
    assert [loop.name for loop in result.fetch] == ["new"]
    assert [loop.name for loop in result.failed] == ["bad", "halt"]
    assert [loop.name for loop in result.unsettled] == ["busy", "stopping"]
    assert (result.known, result.duplicates) == (1, 1)


def test_idle_polls_persist_the_watermark_only_in_steps() -> None:
    day = timedelta(hours=24)
    assert rules.should_persist_watermark(None, T0, day)
    assert not rules.should_persist_watermark(T0, T0 + timedelta(minutes=5), day)
    assert not rules.should_persist_watermark(T0, T0 + timedelta(hours=5), day)
    assert rules.should_persist_watermark(T0, T0 + timedelta(hours=6), day)  # lookback / 4
    week = timedelta(days=7)
    assert not rules.should_persist_watermark(T0, T0 + timedelta(hours=5, minutes=59), week)
    assert rules.should_persist_watermark(T0, T0 + timedelta(hours=6), week)  # the step
    assert rules.should_persist_watermark(T0, T0 + timedelta(minutes=3), timedelta(minutes=10))


# -- triggers -------------------------------------------------------------------------------


def _spec(**kw: object) -> DatasetSpec:
    return DatasetSpec.model_validate({"outputS3Uri": "s3://bucket/out", **kw})


def test_should_train() -> None:
    spec = _spec(minNewSamples=10, maxWait="2h")
    now = T0 + timedelta(hours=3)
    assert rules.should_train(0, None, now, spec).reason is rules.TriggerReason.NOTHING_PENDING
    assert rules.should_train(0, None, now, spec, force=True).train is False
    assert rules.should_train(10, now, now, spec).reason is rules.TriggerReason.MIN_NEW_SAMPLES
    waited = rules.should_train(3, T0, now, spec)
    assert waited.train
    assert waited.reason is rules.TriggerReason.MAX_WAIT
    assert "3h00m" in waited.message
    fresh = rules.should_train(3, now - timedelta(minutes=30), now, spec)
    assert not fresh.train
    assert fresh.due_in == timedelta(minutes=90)
    forced = rules.should_train(1, now, now, spec, force=True)
    assert forced.train
    assert forced.reason is rules.TriggerReason.RETRAIN_NOW


# -- ledger ---------------------------------------------------------------------------------


def test_ledger_round_trip_and_counters() -> None:
    ledger = Ledger()
    segment = _segment(2, sha="b" * 64)
    ledger.record(
        [
            LoopOutcome("a", T0, segment.id),
            LoopOutcome("b", T0, segment.id),
            LoopOutcome("c", T0, QUARANTINED),
            LoopOutcome("d", T0, FAILED),
        ],
        segment=segment,
        dropped_boxes=3,
    )
    ledger.advance(T0 + timedelta(hours=1), None)
    ledger.output_prefix = "s3://out/a2i"
    again = Ledger.from_json(ledger.to_json())
    assert again.to_json() == ledger.to_json()
    assert again.loops == ledger.loops
    assert again.totals.ingested_loops == 3
    assert again.totals.samples == 2
    assert again.totals.quarantined == 1
    assert again.totals.failed_loops == 1
    assert again.totals.dropped_boxes == 3
    assert again.pending_samples == 2
    assert again.outcome("a") == segment.id


def test_ledger_refuses_a_loop_twice() -> None:
    ledger = Ledger()
    ledger.record([LoopOutcome("a", T0, QUARANTINED)])
    with pytest.raises(ValueError, match="already in the ledger"):
        ledger.record([LoopOutcome("a", T0, FAILED)])
    with pytest.raises(ValueError, match="does not match"):
        ledger.record([LoopOutcome("z", T0, "c" * 16)], segment=_segment(2, sha="c" * 64))


def test_ledger_prunes_below_the_horizon() -> None:
    ledger = Ledger()
    ledger.record(
        [LoopOutcome("old", T0, FAILED), LoopOutcome("new", T0 + timedelta(hours=2), FAILED)]
    )
    ledger.advance(T0 + timedelta(hours=3), T0 + timedelta(hours=1))
    assert "old" not in ledger
    assert "new" in ledger
    ledger.advance(T0, T0)  # never backwards
    assert ledger.watermark == T0 + timedelta(hours=3)
    assert ledger.horizon == T0 + timedelta(hours=1)


def test_claims_are_idempotent_and_exclusive() -> None:
    ledger = Ledger()
    first = _segment(2, sha="1" * 64)
    ledger.record([LoopOutcome(n, T0, first.id) for n in "ab"], segment=first)
    claim = ledger.claim("r1", T0)
    assert claim.segments == [first]
    assert ledger.pending == []
    second = _segment(1, sha="2" * 64)
    ledger.record([LoopOutcome("c", T0, second.id)], segment=second)
    assert ledger.claim("r1", T0).segments == [first]  # a retry gets the same samples
    assert ledger.claim("r2", T0).segments == [second]
    ledger.release("r2")
    assert ledger.pending == [second]
    assert ledger.run("r2") is None


@pytest.mark.parametrize(
    "data",
    [
        b"nope",
        b"[]",
        b'{"version": 99}',
        b'{"version": 1, "loops": {"a": 3}}',
        b'{"version": 1, "loops": "a 1"}',
        b'{"version": 1, "loops": "a x Q"}',
        b'{"version": 1, "fetchFailures": {"a": [1, "x"]}}',
        b'{"version": 1, "totals": {"samples": "many"}}',
        b'{"version": 1, "x": ' + b"[" * 100_000 + b"}",
        b'{"version": 1, "x": ' + b"9" * 5000 + b"}",
    ],
)
def test_corrupt_ledger_is_reported(data: bytes) -> None:
    with pytest.raises(LedgerCorrupt):
        Ledger.from_json(data).loops  # noqa: B018 - the loop index is parsed on first use


def test_fetch_failures_survive_the_round_trip_and_go_when_the_loop_settles() -> None:
    ledger = Ledger()
    assert ledger.record_fetch_failure("a", T0) == 1
    assert ledger.record_fetch_failure("a", T0) == 2
    ledger.record_fetch_failure("old", T0 - timedelta(days=3))
    again = Ledger.from_json(ledger.to_json())
    assert again.fetch_attempts("a") == 2
    assert again.fetch_attempts("old") == 1
    again.advance(T0, T0 - timedelta(days=1))  # "old" is below the horizon now
    assert set(again.fetch_failures) == {"a"}
    again.record([LoopOutcome("a", T0, QUARANTINED)])
    assert again.fetch_failures == {}
    assert b"fetchFailures" not in again.to_json()
    assert again.record_fetch_failure("a", T0) == 0  # settled loops are not counted
