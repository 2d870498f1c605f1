"""Pure rules of issue 17: newest review wins, reviewer agreement in the ledger and the
status, and the WaitingForValidationData start decision."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from retraining_operator.api import (
    DatasetSpec,
    Phase,
    RetrainingPolicyStatus,
    ValidationWait,
)
from retraining_operator.manifest.dedupe import NewestReviews, review_key
from retraining_operator.reconcile.ingest import (
    LOWEST_REVIEWERS,
    TriggerReason,
    reviewer_summary,
    should_train,
)
from retraining_operator.reconcile.ledger import MAX_REVIEWERS, Ledger, LedgerCorrupt
from retraining_operator.reconcile.status import Observation, refresh_conditions

ATTR = "a2i-retraining"
NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


def _line(image: str, loop: str, when: str | None) -> str:
    metadata: dict[str, object] = {"job-name": f"a2i/{loop}"}
    if when is not None:
        metadata["creation-date"] = when
    return json.dumps(
        {"source-ref": image, ATTR: {"annotations": []}, f"{ATTR}-metadata": metadata}
    )


REVIEWS = st.lists(
    st.tuples(
        st.sampled_from(["s3://b/1.jpg", "s3://b/2.jpg", "s3://b/3.jpg"]),
        st.text("abcdef", min_size=1, max_size=4),
        st.one_of(
            st.none(),
            st.just("not a time"),
            st.datetimes(min_value=datetime(2025, 1, 1), max_value=datetime(2027, 1, 1)).map(
                lambda d: d.strftime("%Y-%m-%dT%H:%M:%S.000Z")
            ),
        ),
    ),
    max_size=12,
)


@settings(max_examples=200, deadline=None)
@given(reviews=REVIEWS, data=st.data())
def test_one_line_per_image_whatever_the_order(
    reviews: list[tuple[str, str, str | None]], data: st.DataObject
) -> None:
    lines = [_line(*review) for review in reviews]

    def kept(order: list[str]) -> list[str]:
        newest = NewestReviews(ATTR)
        for line in order:
            newest.add(line)
        out = [line for line in order if newest.keep(line)[1]]
        assert newest.superseded == len(order) - len(out)
        return out

    first = kept(lines)
    again = kept(data.draw(st.permutations(lines)))
    assert sorted(first) == sorted(again)  # the same winners in any order
    assert len({json.loads(line)["source-ref"] for line in first}) == len(first)
    for line in first:  # each winner is the newest review of its image
        image, key = review_key(line, ATTR)
        assert all(review_key(other, ATTR)[1] <= key for other in lines if image in other)


def test_the_newer_review_wins_and_a_later_loop_name_breaks_ties() -> None:
    old = _line("s3://b/x.jpg", "loop-b", "2026-11-01T10:00:00.000Z")
    new = _line("s3://b/x.jpg", "loop-a", "2026-11-02T10:00:00.000Z")
    newest = NewestReviews(ATTR)
    newest.add(new)
    newest.add(old)
    assert [newest.keep(line)[1] for line in (old, new)] == [False, True]
    same_a = _line("s3://b/y.jpg", "loop-a", "2026-11-02T10:00:00Z")
    same_b = _line("s3://b/y.jpg", "loop-b", "2026-11-02T10:00:00Z")
    assert review_key(same_b, ATTR) > review_key(same_a, ATTR)
    with pytest.raises(ValueError, match="source-ref"):
        review_key('{"no": "source"}', ATTR)


def test_reviewer_agreement_round_trips_and_stays_bounded() -> None:
    ledger = Ledger()
    ledger.record_agreement([("wa", 1.0), ("wb", 0.5)])
    ledger.record_agreement([("wa", 0.5)])
    assert ledger.reviewers == {"wa": (2, 1.5), "wb": (1, 0.5)}
    assert Ledger.from_json(ledger.to_json()).reviewers == ledger.reviewers
    ledger.record_agreement((f"w{i:04d}", 1.0) for i in range(MAX_REVIEWERS + 50))
    assert len(ledger.reviewers) == MAX_REVIEWERS
    assert "wa" in ledger.reviewers  # the ones with the most images stay


@pytest.mark.parametrize("reviewers", ['"x"', '{"w1": "lots"}', '{"w1": [1]}', '{"w1": ["a", 2]}'])
def test_a_corrupt_reviewers_field_is_a_corrupt_ledger(reviewers: str) -> None:
    document = json.loads(Ledger().to_json())
    document["reviewers"] = json.loads(reviewers)
    with pytest.raises(LedgerCorrupt):
        Ledger.from_json(json.dumps(document).encode())


def test_status_names_the_least_agreeing_reviewers_only() -> None:
    assert reviewer_summary({}) is None
    reviewers = {f"w{i:02d}": (10, i / 2) for i in range(20)}  # w00 agrees least
    summary = reviewer_summary(reviewers)
    assert summary is not None
    assert summary.workers == 20
    assert [r.worker for r in summary.lowest] == [f"w{i:02d}" for i in range(LOWEST_REVIEWERS)]
    assert summary.lowest[1].agreement == 0.05
    assert summary.mean_agreement == pytest.approx(sum(i / 2 for i in range(20)) / 200)
    wire = summary.to_wire()
    assert len(wire["lowest"]) == LOWEST_REVIEWERS


def _wait(pending: int = 12) -> ValidationWait:
    return ValidationWait(pending_samples=pending, holdout_images=1, min_samples=10)


def test_no_run_starts_while_the_holdout_is_too_small_and_nothing_changed() -> None:
    spec = DatasetSpec(output_s3_uri="s3://bucket/out", min_new_samples=12)
    decision = should_train(12, NOW, NOW, spec, validation_wait=_wait())
    assert not decision.train
    assert decision.reason is TriggerReason.WAITING_FOR_VALIDATION_DATA
    forced = should_train(12, NOW, NOW, spec, force=True, validation_wait=_wait())
    assert not forced.train
    # New samples, a fixed validation manifest, a new minimum or the opt-out: try again.
    assert should_train(13, NOW, NOW, spec, validation_wait=_wait()).train
    for changed in (
        {"validation": {"manifestS3Uri": "s3://bucket/validation.manifest"}},
        {"validation": {"minSamples": 1}},
        {"validation": {"allowTrainAsValidation": True}},
    ):
        other = DatasetSpec.model_validate(
            {"outputS3Uri": "s3://bucket/out", "minNewSamples": 12, **changed}
        )
        assert should_train(12, NOW, NOW, other, validation_wait=_wait()).train, changed


def test_the_wait_is_a_progressing_condition() -> None:
    status = RetrainingPolicyStatus(phase=Phase.COLLECTING, validation_wait=_wait())
    conditions = refresh_conditions(status, observed=Observation(NOW, 3), degraded=None)
    progressing = next(c for c in conditions if c.type.value == "Progressing")
    assert progressing.status == "False"
    assert progressing.reason == "WaitingForValidationData"
    assert "1 distinct image(s)" in progressing.message
    ready = next(c for c in conditions if c.type.value == "Ready")
    assert ready.status == "True"  # waiting is not broken
    status.validation_wait = None
    later = refresh_conditions(
        status, observed=Observation(NOW + timedelta(minutes=1), 3), degraded=None
    )
    assert next(c for c in later if c.type.value == "Progressing").reason == "Idle"
