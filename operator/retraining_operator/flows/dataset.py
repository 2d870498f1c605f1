"""Assemble one run's dataset from the pending samples: train and validation manifests.

    claim      ledger: all pending segments -> runs[run_id]       (If-Match; idempotent)
    pass 1     read the claimed segments: how many new lines go to train / validation
    replay     read the replay manifest once to count its usable lines
    pass 2     stream segments (+ replay lines, interleaved) into the train manifest and
               the holdout lines into the validation manifest; both are content-addressed
               `<outputS3Uri>/manifests/<sha256>.jsonl`, multipart when large
    record     ledger: runs[run_id].result = the URIs and counts

Every step is deterministic for (claimed segments, spec, run id), so a crash anywhere and
a retry with the same run id produce the same manifests (same URIs), and the claimed
loops never appear in another run. Nothing is held whole in memory.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from retraining_operator.api import RetrainingPolicySpec, RunSamples
from retraining_operator.aws.errors import AwsError
from retraining_operator.aws.s3 import S3, S3Location
from retraining_operator.aws.session import AwsSession
from retraining_operator.errors import NeedsAttention, RetryLater
from retraining_operator.flows.ingest import PENDING_PREFIX
from retraining_operator.flows.ledger_store import (
    LedgerAccess,
    LedgerError,
    LedgerStore,
    LedgerUnreadable,
)
from retraining_operator.flows.sinks import S3LineSink, WrittenManifest
from retraining_operator.manifest import replay as replay_rules
from retraining_operator.manifest.dedupe import NewestReviews
from retraining_operator.manifest.jsonl import DEFAULT_PART_SIZE
from retraining_operator.manifest.split import is_validation, source_ref_of
from retraining_operator.reconcile.ledger import Ledger, PendingSegment, RunClaim

log = logging.getLogger(__name__)

MANIFEST_PREFIX = "manifests"
STAGING_PREFIX = "staging"


class DatasetError(Exception):
    """The run's dataset cannot be assembled: always a `DatasetRetry` or `DatasetFailed`."""


class DatasetRetry(DatasetError, RetryLater):
    """AWS was busy or the ledger contended: retry later with the same run id."""

    def __init__(self, message: str, after: float | None = None) -> None:
        RetryLater.__init__(self, message, after, reason="DatasetRetry")


class NothingToTrain(DatasetRetry):
    """No pending samples (or none that would go to training): keep collecting.

    A `RetryLater` so that an uncaught one is harmless; the pass catches it first and
    ends the run without training.
    """


class WaitingForValidationData(NothingToTrain):
    """The validation holdout of the pending samples is smaller than
    `dataset.validation.minSamples` (and `allowTrainAsValidation` is off): validating on
    so few images (or, as the seed did, on the train manifest itself) would let the gate
    measure memorisation. The samples stay pending; the run does not start."""

    def __init__(
        self, *, pending: int, holdout_images: int, min_samples: int, for_gate: bool = False
    ) -> None:
        self.pending = pending
        self.holdout_images = holdout_images
        self.min_samples = min_samples
        if for_gate:
            message = (
                f"the held-out set the gate judges on would have {holdout_images} image(s) with "
                f"this run's, fewer than gate.evaluation.minImages {min_samples}: waiting for "
                "more reviews (or set dataset.validation.manifestS3Uri)"
            )
        else:
            message = (
                f"the validation holdout of the {pending} pending samples has {holdout_images} "
                f"distinct image(s), fewer than dataset.validation.minSamples {min_samples}: "
                "waiting for more reviews (or set dataset.validation.manifestS3Uri, or "
                "allowTrainAsValidation: true to validate on training data)"
            )
        super().__init__(message)


class DatasetFailed(DatasetError, NeedsAttention):
    """A person must act: reason `DatasetUnavailable` (a replay/validation manifest or a
    pending segment is missing, access denied) or `LedgerCorrupt`."""

    def __init__(self, reason: str, message: str) -> None:
        NeedsAttention.__init__(self, reason, message)


class ValidationSource(StrEnum):
    HOLDOUT = "Holdout"  # the hash split of the new samples
    MANIFEST = "Manifest"  # spec.dataset.validation.manifestS3Uri
    # holdout too small and allowTrainAsValidation: validate on the train manifest (as the seed)
    TRAIN = "Train"


@dataclass(frozen=True)
class AssembledDataset:
    run_id: str
    train_manifest_s3_uri: str
    validation_manifest_s3_uri: str
    samples: RunSamples  # new, replay, validation, train (= num_training_samples)
    validation_source: ValidationSource
    segments: int
    replay_skipped: int = 0  # replay lines that were not usable object-detection lines
    # What is still pending once this run holds its claim (samples, oldest, the ledger's
    # revision), read from the ledger as it stands after the claim; None when not known.
    pending_after: tuple[int, datetime | None, int] | None = field(default=None, compare=False)

    @property
    def num_training_samples(self) -> int:
        return self.samples.train

    def to_json(self) -> dict[str, Any]:
        return {
            "trainManifestS3Uri": self.train_manifest_s3_uri,
            "validationManifestS3Uri": self.validation_manifest_s3_uri,
            "samples": self.samples.to_wire(),
            "validationSource": str(self.validation_source),
            "segments": self.segments,
            "replaySkipped": self.replay_skipped,
        }

    @classmethod
    def from_json(cls, run_id: str, raw: dict[str, Any]) -> AssembledDataset:
        return cls(
            run_id=run_id,
            train_manifest_s3_uri=str(raw["trainManifestS3Uri"]),
            validation_manifest_s3_uri=str(raw["validationManifestS3Uri"]),
            samples=RunSamples.model_validate(raw["samples"]),
            validation_source=ValidationSource(raw["validationSource"]),
            segments=int(raw["segments"]),
            replay_skipped=int(raw.get("replaySkipped", 0)),
        )


# The multipart part size of the manifests a run writes (S3's minimum is 5 MiB).
PART_SIZE = DEFAULT_PART_SIZE


def assemble_run_dataset(
    session: AwsSession,
    spec: RetrainingPolicySpec,
    run_id: str,
    *,
    clock: Callable[[], datetime] | None = None,
    access: LedgerAccess,
    held_out_before: int = 0,
) -> AssembledDataset:
    """Claim every pending sample for `run_id` and write its manifests (idempotent).

    Calling it again with the same run id (after a crash, or just twice) returns the same
    manifests and never claims more samples. Raises `NothingToTrain` when nothing is
    pending (or every new image fell into the validation holdout; the samples stay
    pending), `WaitingForValidationData` (a `NothingToTrain`: the holdout is smaller than
    `validation.minSamples`; the claim is released), `DatasetRetry` (a `RetryLater`: AWS
    busy, the ledger contended) or
    `DatasetFailed` (a `NeedsAttention`: a missing manifest or denied access, reason
    `DatasetUnavailable`; an unreadable ledger, reason `LedgerCorrupt`).

    With `gate.evaluation` (and no fixed validation manifest) the held-out set the gate will
    judge on (`held_out_before` images, plus this run's holdout) must reach its `minImages`,
    else `WaitingForValidationData` too: a model that cannot be judged is not trained.
    """
    now = clock or (lambda: datetime.now(UTC))
    s3 = S3(session.s3())
    store = LedgerStore(s3, spec.dataset.output_s3_uri, access)
    try:
        store.load()
        claim = _claim(store, run_id, now)
        if claim.result is not None:
            return dataclasses.replace(
                AssembledDataset.from_json(run_id, claim.result), pending_after=_pending(store)
            )
        try:
            dataset = _build(s3, spec, claim, PART_SIZE, held_out_before)
        except WaitingForValidationData:
            store.update(lambda ledger: ledger.release(run_id))
            raise
        if dataset is None:
            store.update(lambda ledger: ledger.release(run_id))
            raise NothingToTrain(
                f"all {claim.samples} pending samples fall into the validation holdout; "
                "they stay pending until a sample for training arrives"
            )
        result = dataset.to_json()

        def record(ledger: Ledger) -> None:
            current = ledger.run(run_id)
            if current is not None:
                current.result = result

        store.update(record)
        dataset = dataclasses.replace(dataset, pending_after=_pending(store))
    except (AwsError, LedgerError) as error:
        raise _dataset_error(
            f"assembling the dataset of run {run_id} failed: {error}", error
        ) from error
    log.info(
        "run %s dataset: %d new (%d validation), %d replay, train %s (%d lines), validation %s",
        run_id,
        dataset.samples.new,
        dataset.samples.validation,
        dataset.samples.replay,
        dataset.train_manifest_s3_uri,
        dataset.samples.train,
        dataset.validation_manifest_s3_uri,
    )
    return dataset


def _pending(store: LedgerStore) -> tuple[int, datetime | None, int]:
    return store.ledger.pending_samples, store.ledger.oldest_pending, store.ledger.revision


def _dataset_error(message: str, error: AwsError | LedgerError) -> DatasetError:
    """Transient or not is decided by the error's class (`aws.errors`, `ledger_store`)."""
    if isinstance(error, LedgerUnreadable):
        return DatasetFailed(error.reason, str(error))
    if isinstance(error, RetryLater):
        return DatasetRetry(message, after=error.after)
    return DatasetFailed("DatasetUnavailable", message)


def _claim(store: LedgerStore, run_id: str, now: Callable[[], datetime]) -> RunClaim:
    existing = store.ledger.run(run_id)
    if existing is not None:
        return existing
    if not store.ledger.pending:
        raise NothingToTrain("no new samples are pending")

    def claim(ledger: Ledger) -> RunClaim:
        if ledger.run(run_id) is None and not ledger.pending:
            raise NothingToTrain("no new samples are pending")
        return ledger.claim(run_id, now())

    return store.update(claim)


def _segment_lines(s3: S3, output: S3Location, segments: list[PendingSegment]) -> Iterator[bytes]:
    """Every sample line of the segments, each segment verified as it is read: its content
    must hash to the sha256 in its name and hold the ledger's number of lines. Anyone who
    can write the dataset prefix could otherwise choose the training data."""
    for segment in segments:
        location = output.child(PENDING_PREFIX, f"{segment.sha256}.jsonl")
        digest = hashlib.sha256()
        count = 0
        for line in s3.iter_lines(location):
            digest.update(line + b"\n")
            count += 1
            if line.strip():
                yield line
        if digest.hexdigest() != segment.sha256 or count != segment.samples:
            raise DatasetFailed(
                "PendingSegmentTampered",
                f"pending segment {location.uri} does not match the ledger (sha256 "
                f"{digest.hexdigest()[:16]}..., {count} lines; expected {segment.sha256[:16]}..., "
                f"{segment.samples} lines): it was changed after the operator wrote it. "
                "Nothing was trained from it; restore it from a previous S3 object version",
            )


@dataclass(frozen=True)
class _Split:
    """Where each newly reviewed image goes: validation (held out, or in the fixed
    validation manifest, which it never trains beside) or training."""

    images: frozenset[str]
    held_out: frozenset[str]
    in_fixed_validation: frozenset[str]
    validation_images: frozenset[str] | None  # the fixed validation manifest's, if any

    @property
    def new_train(self) -> int:
        return len(self.images) - len(self.held_out) - len(self.in_fixed_validation)

    def replay_usable(self, reference: str) -> bool:
        """Replay never trains on an image this run reviewed anew (the new review wins;
        a held-out image must not train at all) or on a fixed validation image."""
        return reference not in self.images and not (
            self.validation_images is not None and reference in self.validation_images
        )


@dataclass(frozen=True)
class _Replay:
    """The replay manifest's lines this run trains on beside the new ones."""

    location: S3Location | None = None
    total: int = 0  # usable lines in the manifest
    skipped: int = 0  # not object-detection lines
    overlap: int = 0  # lines of an image that may not train here
    per_new: int = 0
    wanted: int = 0


def _build(
    s3: S3, spec: RetrainingPolicySpec, claim: RunClaim, part_size: int, held_out_before: int
) -> AssembledDataset | None:
    dataset = spec.dataset
    attribute = spec.labels.attribute_name
    output = S3Location.parse(dataset.output_s3_uri)
    validation_uri = dataset.validation.manifest_s3_uri
    # A fixed validation manifest: its images never train (read first: fails fast if absent).
    validation_images = (
        frozenset(_source_refs(s3, S3Location.parse(validation_uri)))
        if validation_uri is not None
        else None
    )
    # Pass 1: the newest review of each image, and the split sizes (replay needs the
    # number of new training lines up front).
    reviews = _newest_reviews(s3, output, claim, attribute)
    holdout = 0 if validation_uri else dataset.validation.holdout_percent
    split = _split(reviews, validation_images, holdout)
    if split.new_train == 0:
        return None
    replay = _replay(s3, spec, split)
    # After reading the replay manifest, so that a missing one is reported, not waited on.
    too_small = validation_uri is None and len(split.held_out) < dataset.validation.min_samples
    if too_small and not dataset.validation.allow_train_as_validation:
        raise WaitingForValidationData(
            pending=claim.samples,
            holdout_images=len(split.held_out),
            min_samples=dataset.validation.min_samples,
        )
    evaluation = spec.gate.evaluation
    judged_on = held_out_before + len(split.held_out)
    if evaluation is not None and validation_uri is None and judged_on < evaluation.min_images:
        raise WaitingForValidationData(
            pending=claim.samples,
            holdout_images=judged_on,
            min_samples=evaluation.min_images,
            for_gate=True,
        )
    writer = _ManifestWriter(s3, output, claim, part_size, attribute)
    written = writer.write(reviews, split, replay)
    return _assembled(spec, claim, reviews, split, replay, written)


def _newest_reviews(s3: S3, output: S3Location, claim: RunClaim, attribute: str) -> NewestReviews:
    reviews = NewestReviews(attribute)
    for line in _segment_lines(s3, output, claim.segments):
        try:
            reviews.add(line)
        except (ValueError, RecursionError) as error:
            # Sealed segments hold only lines ingest wrote: this one was not.
            raise DatasetFailed(
                "PendingSegmentTampered",
                f"a pending segment of run {claim.run_id} holds a line that is not a manifest "
                f"line ({str(error)[:120]}): it was not written by this operator. Nothing was "
                "trained from it",
            ) from error
    return reviews


def _split(
    reviews: NewestReviews, validation_images: frozenset[str] | None, holdout: int
) -> _Split:
    images = frozenset(reviews.newest.keys())
    return _Split(
        images=images,
        held_out=frozenset(r for r in images if holdout > 0 and is_validation(r, holdout)),
        in_fixed_validation=images & validation_images if validation_images else frozenset(),
        validation_images=validation_images,
    )


def _replay(s3: S3, spec: RetrainingPolicySpec, split: _Split) -> _Replay:
    replay = spec.dataset.replay
    per_new = replay.samples_per_new_sample if replay else 0
    if replay is None or per_new <= 0:
        return _Replay(per_new=per_new)
    location = S3Location.parse(replay.manifest_s3_uri)
    total, skipped, overlap = _count_replay(
        s3, location, spec.labels.attribute_name, split.replay_usable
    )
    wanted = per_new * split.new_train if total else 0
    return _Replay(location, total, skipped, overlap, per_new, wanted)


@dataclass(frozen=True)
class _Written:
    train: WrittenManifest
    validation: WrittenManifest | None


class _ManifestWriter:
    """Pass 2: the run's train (new lines interleaved with replay) and held-out validation
    manifests, streamed to content-addressed S3 objects; aborted on any failure."""

    def __init__(
        self, s3: S3, output: S3Location, claim: RunClaim, part_size: int, attribute: str
    ) -> None:
        self.s3, self.output, self.claim, self.part_size = s3, output, claim, part_size
        self.attribute = attribute

    def _sink(self, name: str) -> S3LineSink:
        staging = self.output.child(STAGING_PREFIX, self.claim.run_id).child(name)
        directory = self.output.child(MANIFEST_PREFIX)
        return S3LineSink(self.s3, directory=directory, staging=staging, part_size=self.part_size)

    def write(self, reviews: NewestReviews, split: _Split, replay: _Replay) -> _Written:
        train_sink = self._sink("train.jsonl")
        validation_sink = self._sink("validation.jsonl") if split.held_out else None
        try:
            new_lines = self._new_train_lines(reviews, split, validation_sink)
            for line in replay_rules.interleave(
                new_lines, self._replay_lines(split, replay), replay.per_new
            ):
                train_sink.write(line)
            train = train_sink.close()
            validation = validation_sink.close() if validation_sink else None
        except BaseException:
            train_sink.abort()
            if validation_sink is not None:
                validation_sink.abort()
            raise
        return _Written(train, validation)

    def _new_train_lines(
        self, reviews: NewestReviews, split: _Split, validation_sink: S3LineSink | None
    ) -> Iterator[bytes]:
        for line in _segment_lines(self.s3, self.output, self.claim.segments):
            reference, newest = reviews.keep(line)
            if not newest or reference in split.in_fixed_validation:
                continue
            if reference in split.held_out:
                assert validation_sink is not None
                validation_sink.write(line)
            else:
                yield line

    def _replay_lines(self, split: _Split, replay: _Replay) -> Iterator[bytes]:
        if replay.location is None or not replay.wanted:
            return iter(())
        attribute = self.attribute
        usable = (
            normalized
            for normalized in (
                replay_rules.normalize_replay_line(line, attribute)
                for line in self.s3.iter_lines(replay.location)
            )
            if normalized is not None and split.replay_usable(source_ref_of(normalized))
        )
        return replay_rules.replayed(usable, replay.total, replay.wanted, self.claim.run_id)


def _assembled(
    spec: RetrainingPolicySpec,
    claim: RunClaim,
    reviews: NewestReviews,
    split: _Split,
    replay: _Replay,
    written: _Written,
) -> AssembledDataset:
    train, validation = written.train, written.validation
    validation_uri = spec.dataset.validation.manifest_s3_uri
    if validation_uri is not None:
        source = ValidationSource.MANIFEST
        validation_count = len(split.validation_images or ())
        validation_manifest = validation_uri
    elif validation is not None:
        source = ValidationSource.HOLDOUT
        validation_count = validation.lines
        validation_manifest = validation.uri
    else:
        source = ValidationSource.TRAIN
        validation_count = train.lines
        validation_manifest = train.uri
    return AssembledDataset(
        run_id=claim.run_id,
        train_manifest_s3_uri=train.uri,
        validation_manifest_s3_uri=validation_manifest,
        samples=RunSamples(
            new=reviews.lines,
            replay=train.lines - split.new_train,
            validation=validation_count,
            train=train.lines,
            superseded=reviews.superseded,
            overlap_dropped=len(split.in_fixed_validation) + replay.overlap,
        ),
        validation_source=source,
        segments=len(claim.segments),
        replay_skipped=replay.skipped,
    )


def _count_replay(
    s3: S3, location: S3Location, attribute_name: str, usable_image: Callable[[str], bool]
) -> tuple[int, int, int]:
    """(usable, not object-detection lines, lines of an image that may not train here)."""
    usable = skipped = overlap = 0
    for line in s3.iter_lines(location):
        if not line.strip():
            continue
        normalized = replay_rules.normalize_replay_line(line, attribute_name)
        if normalized is None:
            skipped += 1
        elif not usable_image(source_ref_of(normalized)):
            overlap += 1
        else:
            usable += 1
    if skipped:
        log.warning(
            "replay manifest %s: %d lines are not object-detection lines for attribute %r; "
            "they are not replayed",
            location.uri,
            skipped,
            attribute_name,
        )
    return usable, skipped, overlap


def _source_refs(s3: S3, location: S3Location) -> set[str]:
    """The images of a manifest (lines without a source-ref are not images)."""
    references: set[str] = set()
    for line in s3.iter_lines(location):
        if not line.strip():
            continue
        try:
            references.add(source_ref_of(line))
        except ValueError:
            continue
    return references
