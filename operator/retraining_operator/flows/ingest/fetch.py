"""Read one confirmed Completed loop's output, convert it, or quarantine it with a reason.

Only loops A2I itself reports Completed get here (a listing page or DescribeHumanLoop). The
output is found by A2I's key layout, or by DescribeHumanLoop when the layout is unknown or
misses, and is read only after `OutputGuard` admits its URI. Reads are bounded by size and by
a byte budget shared by the fetch threads.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime

from retraining_operator.aws import a2i
from retraining_operator.aws.errors import AccessDenied, AwsError, NotFound
from retraining_operator.aws.s3 import S3, S3Location, StoredObject
from retraining_operator.aws.session import AwsSession
from retraining_operator.errors import RetryLater
from retraining_operator.flows.ingest.guard import OutputGuard
from retraining_operator.flows.ingest.results import IngestError
from retraining_operator.manifest.convert import MAX_OUTPUT_BYTES, Converted, Converter
from retraining_operator.manifest.quarantine import (
    Quarantined,
    QuarantineReason,
    quarantine_record,
)
from retraining_operator.reconcile.ledger import MAX_FETCH_ATTEMPTS

log = logging.getLogger(__name__)


@dataclass
class Fetched:
    loop: a2i.HumanLoop
    converted: Converted | None = None
    quarantined: Quarantined | None = None
    record_uri: str | None = None
    error: str | None = None  # not settled, retried next time
    # The error counts towards MAX_FETCH_ATTEMPTS (it is not AWS being busy).
    counted: bool = False


class ByteBudget:
    """A counting semaphore in bytes: output bodies held at once across fetch threads.

    A holder reserves an object's ContentLength before reading its body and releases it
    once the output is converted (or quarantined), so the bytes read, parsed and copied
    into a quarantine record at any moment stay proportional to `capacity`, not to the
    number of threads. A single reservation larger than `capacity` is clamped to it.
    """

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError("capacity must be positive")
        self.capacity = capacity
        self.used = 0
        self.peak = 0
        self._changed = threading.Condition()

    @contextlib.contextmanager
    def hold(self, amount: int) -> Iterator[None]:
        amount = min(max(amount, 1), self.capacity)
        with self._changed:
            while self.used + amount > self.capacity:
                self._changed.wait()
            self.used += amount
            self.peak = max(self.peak, self.used)
        try:
            yield
        finally:
            with self._changed:
                self.used -= amount
                self._changed.notify_all()


class OutputLocator:
    """Finds a loop's output.json: predicted from the key layout, else DescribeHumanLoop.

    The layout's prefix is known from the ledger or learned from the first DescribeHumanLoop
    of an ingest, and is used only inside the flow definition's S3OutputPath; only one thread
    describes while the others wait, so learning costs one call, not one per worker.
    `described` holds the output URIs already known from DescribeHumanLoop (events).
    """

    def __init__(
        self,
        session: AwsSession,
        flow_definition_name: str,
        prefix: str | None,
        described: Mapping[str, str] | None = None,
    ) -> None:
        self.session = session
        self.flow = flow_definition_name
        self.prefix = prefix
        self.described = dict(described or {})
        self.learned = False
        self._layout_unknown = False
        self._lock = threading.Lock()

    def locate(self, loop: a2i.HumanLoop) -> tuple[str | None, bool]:
        """(output URI or None, whether it came from DescribeHumanLoop)."""
        known = self.described.get(loop.name)
        if known is not None:
            return known, True
        if self.prefix is None and not self._layout_unknown:
            with self._lock:
                if self.prefix is None and not self._layout_unknown:
                    uri = self.describe(loop)
                    if self.prefix is None and uri is not None:
                        self._layout_unknown = True  # keep describing, without the lock
                    return uri, True
        if self.prefix is None:
            return self.describe(loop), True
        return a2i.output_uri(self.prefix, self.flow, loop.created, loop.name), False

    def describe(self, loop: a2i.HumanLoop) -> str | None:
        uri = a2i.describe_output_uri(self.session.a2i(), loop.name)
        if uri is None:
            return None
        prefix = a2i.output_prefix_of(uri, self.flow, loop.name)
        # Trust the layout only if it also reproduces the creation-time part of the key.
        fits = prefix is not None and (
            a2i.output_uri(prefix, self.flow, loop.created, loop.name) == uri
        )
        if fits and self.prefix != prefix:
            self.prefix, self.learned = prefix, True
        return uri


class NoOutputYet(Exception):
    """A2I reports the loop Completed but no output location (counted as a failed attempt)."""


class OutsideOutputPath(Exception):
    """The output URI is not under the flow definition's S3OutputPath (counted; never read)."""


@dataclass
class Fetcher:
    """Reads, converts (or quarantines) Completed loops' outputs; shared by the fetch threads."""

    s3: S3
    locator: OutputLocator
    guard: OutputGuard
    converter: Converter
    quarantine_dir: S3Location
    clock: Callable[[], datetime]
    budget: ByteBudget
    attempts: Mapping[str, int]

    def __call__(self, loop: a2i.HumanLoop) -> Fetched:
        """Never raises but for failures of the whole ingest (AccessDenied, IngestError).

        A failure that waiting may cure (AWS throttling or 5xx: `RetryLater`) leaves the loop
        unsettled. Any other failure to read it (A2I names no output, the object cannot be
        read, a bug) counts as a failed attempt in the ledger; at the `MAX_FETCH_ATTEMPTS`th
        the loop is quarantined (`FetchFailed`), so one loop can hold the watermark for a few
        polls, never forever.
        """
        try:
            return self._fetch_once(loop)
        except (AccessDenied, IngestError):
            raise  # the operator's identity may not read outputs: the whole ingest fails
        except RetryLater as error:
            return Fetched(loop, error=f"{loop.name}: {error}")
        except Exception as error:  # one loop must never stop the others
            return self._failed_attempt(loop, error)

    def _failed_attempt(self, loop: a2i.HumanLoop, error: Exception) -> Fetched:
        attempt = self.attempts.get(loop.name, 0) + 1
        text = f"{type(error).__name__}: {str(error)[:300]}"
        if not isinstance(error, AwsError | NoOutputYet | OutsideOutputPath):
            log.warning("reading the output of %s failed", loop.name, exc_info=True)
        if attempt < MAX_FETCH_ATTEMPTS:
            return Fetched(
                loop,
                error=f"{loop.name}: {text} (attempt {attempt} of {MAX_FETCH_ATTEMPTS})",
                counted=True,
            )
        item = Quarantined(
            QuarantineReason.FETCH_FAILED,
            f"the output could not be read in {attempt} polls; last error: {text}",
            loop_name=loop.name,
        )
        try:
            return self.quarantine(loop, item, None)
        except AwsError as store_error:
            return Fetched(loop, error=f"{loop.name}: {text}; {store_error}", counted=True)

    def _open(self, uri: str | None) -> StoredObject | None:
        if uri is None:
            return None
        if not self.guard.allows(uri):
            raise OutsideOutputPath(
                f"{uri} is not under the flow definition's S3OutputPath: not read"
            )
        try:
            return self.s3.open(S3Location.parse(uri))
        except NotFound:
            return None

    def _fetch_once(self, loop: a2i.HumanLoop) -> Fetched:
        uri, described = self.locator.locate(loop)
        stored = self._open(uri)
        if stored is None and not described:
            # The predicted key missed (layout changed?): ask A2I where the output is.
            actual = self.locator.describe(loop)
            if actual is not None and actual != uri:
                uri = actual
                stored = self._open(uri)
            elif actual is None:
                uri = None
        if uri is None:
            raise NoOutputYet(f"{loop.name}: Completed but A2I names no OutputS3Uri yet")
        if stored is None:
            item = Quarantined(
                QuarantineReason.OUTPUT_MISSING,
                f"the loop is Completed but {uri} does not exist",
                loop_name=loop.name,
                source=uri,
            )
            return self.quarantine(loop, item, None)
        return self._convert(loop, stored, uri)

    def _convert(self, loop: a2i.HumanLoop, stored: StoredObject, uri: str) -> Fetched:
        """Read an opened output (bounded by size and the byte budget), convert or quarantine."""
        with stored:
            if stored.size is not None and stored.size > MAX_OUTPUT_BYTES:
                return self._too_large(loop, stored, stored.size)
            # Never more than ContentLength (+1) bytes: a body longer than announced is as
            # suspect as a large one, and the budget holds only what was announced.
            expected = MAX_OUTPUT_BYTES if stored.size is None else stored.size
            with self.budget.hold(expected + 1):
                raw = stored.read_at_most(expected)
                if raw is None:
                    return self._too_large(loop, stored, expected + 1)
                result = self.converter.convert_bytes(raw, source=uri, expected_loop_name=loop.name)
                if isinstance(result, Quarantined):
                    return self.quarantine(loop, result, raw)
                return Fetched(loop, converted=result)

    def _too_large(self, loop: a2i.HumanLoop, stored: StoredObject, size: int) -> Fetched:
        """Quarantine an output over the size limit by its size and ETag; its body is never read."""
        more = ""
        if stored.size is not None and size > stored.size:
            more = f" (its body is longer than its ContentLength, {stored.size})"
        item = Quarantined(
            QuarantineReason.OUTPUT_TOO_LARGE,
            f"{stored.location.uri} has {'at least ' if more else ''}{size} bytes{more}, more "
            f"than the {MAX_OUTPUT_BYTES} bytes an A2I output may have (ETag {stored.etag}); "
            "it was not read",
            loop_name=loop.name,
            source=stored.location.uri,
            size=size,
            etag=stored.etag,
        )
        return self.quarantine(loop, item, None)

    def quarantine(self, loop: a2i.HumanLoop, item: Quarantined, raw: bytes | None) -> Fetched:
        target = self.quarantine_dir.child(f"{loop.name}.json")
        self.s3.put(target, quarantine_record(item, raw, at=self.clock()))
        log.warning("quarantined %s", item.describe())
        return Fetched(loop, quarantined=item, record_uri=target.uri)
