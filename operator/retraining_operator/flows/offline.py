"""Offline conversion: every A2I `output.json` below a directory or S3 prefix -> one manifest.

The same converter and the same streamed writers as the operator; what differs is only
where inputs come from (a listing instead of ListHumanLoops) and that nothing is
recorded in a ledger. Lines are written sorted by human loop name; a loop name seen
twice keeps its first output (by path) and reports the others as `DuplicateLoop`.

Every input is isolated: one that cannot be read, is over the size limit (never read
past it), or makes the parser or converter fail is quarantined with its reason, and the
others are still written.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from retraining_operator.api import LabelsSpec
from retraining_operator.aws.errors import AwsError
from retraining_operator.aws.s3 import S3, S3Location
from retraining_operator.flows.sinks import FileLineSink, LineSink, S3LineSink, WrittenManifest
from retraining_operator.manifest.convert import (
    MAX_OUTPUT_BYTES,
    Converted,
    Converter,
    DroppedBox,
)
from retraining_operator.manifest.quarantine import Quarantined, QuarantineReason

OUTPUT_NAME = "output.json"


class OfflineInputError(Exception):
    """The input cannot be read at all (missing directory, no outputs, S3 listing denied)."""


@dataclass(frozen=True)
class Oversized:
    """An input over the size limit: only its size (and ETag, from S3) is known."""

    size: int
    etag: str | None = None


# Reads one input, at most `limit` + 1 bytes of it.
Reader = Callable[[int], "bytes | Oversized"]


@dataclass(frozen=True)
class Source:
    name: str  # a path or an s3:// URI
    read: Reader

    @property
    def loop_hint(self) -> str | None:
        """The loop name from the A2I key layout (`.../<loop>/output.json`), if it has one."""
        parts = self.name.rstrip("/").split("/")
        return parts[-2] if len(parts) >= 2 and parts[-1] == OUTPUT_NAME else None


@dataclass
class OfflineResult:
    written: WrittenManifest | None = None
    inputs: int = 0
    quarantined: list[Quarantined] = field(default_factory=list)
    dropped: list[tuple[Converted, DroppedBox]] = field(default_factory=list)
    # Consensus: worker hash -> (images, sum of agreement with the consensus).
    reviewers: dict[str, tuple[int, float]] = field(default_factory=dict)

    def reviewer_lines(self, limit: int = 10) -> list[str]:
        """The least agreeing reviewers first, one line each (hashes, never worker ids)."""
        ranked = sorted(
            (
                (total / images, images, worker)
                for worker, (images, total) in self.reviewers.items()
            ),
        )
        return [
            f"reviewer {worker}: agreement {mean:.2f} over {images} image(s)"
            for mean, images, worker in ranked[:limit]
        ]


def local_sources(root: Path) -> list[Source]:
    if root.is_file():
        paths = [root]
    elif root.is_dir():
        paths = sorted(path for path in root.rglob(OUTPUT_NAME) if path.is_file())
    else:
        raise OfflineInputError(f"input {root} does not exist")
    return [Source(str(path), _file_reader(path)) for path in paths]


def _file_reader(path: Path) -> Reader:
    def read(limit: int) -> bytes | Oversized:
        size = path.stat().st_size
        if size > limit:
            return Oversized(size)
        with path.open("rb") as handle:
            data = handle.read(limit + 1)  # the file may have grown since the stat
        return Oversized(len(data)) if len(data) > limit else data

    return read


def _s3_reader(s3: S3, location: S3Location) -> Reader:
    def read(limit: int) -> bytes | Oversized:
        with s3.open(location) as stored:
            if stored.size is not None and stored.size > limit:
                return Oversized(stored.size, stored.etag)
            data = stored.read_at_most(limit)
            return Oversized(limit + 1, stored.etag) if data is None else data

    return read


def s3_sources(s3: S3, prefix: S3Location) -> list[Source]:
    try:
        keys = sorted(
            location.key
            for location in s3.list(prefix)
            if location.key.rsplit("/", 1)[-1] == OUTPUT_NAME
        )
    except AwsError as error:
        raise OfflineInputError(f"cannot list {prefix.uri}: {error}") from error

    return [
        Source(S3Location(prefix.bucket, key).uri, _s3_reader(s3, S3Location(prefix.bucket, key)))
        for key in keys
    ]


def _convert(converter: Converter, source: Source) -> Converted | Quarantined:
    """One input -> a line or a quarantine record; never raises (one input, one verdict)."""
    try:
        raw = source.read(MAX_OUTPUT_BYTES)
    except (OSError, AwsError) as error:
        return Quarantined(
            QuarantineReason.OUTPUT_MISSING,
            f"cannot read it: {error}",
            loop_name=source.loop_hint,
            source=source.name,
        )
    except Exception as error:  # an unexpected failure must not lose the other inputs
        return Quarantined(
            QuarantineReason.FETCH_FAILED,
            f"cannot read it: {type(error).__name__}: {str(error)[:200]}",
            loop_name=source.loop_hint,
            source=source.name,
        )
    if isinstance(raw, Oversized):
        etag = f" (ETag {raw.etag})" if raw.etag else ""
        return Quarantined(
            QuarantineReason.OUTPUT_TOO_LARGE,
            f"{raw.size} bytes{etag}, more than the {MAX_OUTPUT_BYTES} bytes an A2I output "
            "may have; not read",
            loop_name=source.loop_hint,
            source=source.name,
            size=raw.size,
            etag=raw.etag,
        )
    result = converter.convert_bytes(raw, source=source.name)
    if isinstance(result, Quarantined) and result.loop_name is None and source.loop_hint:
        result = dataclasses.replace(result, loop_name=source.loop_hint)
    return result


def convert_sources(
    sources: list[Source], labels: LabelsSpec, *, concurrency: int = 16
) -> Iterator[Converted | Quarantined]:
    """Convert every source (in input order), reading up to `concurrency` at a time."""
    converter = Converter(labels)
    with ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
        yield from pool.map(lambda source: _convert(converter, source), sources)


def build_manifest(
    sources: list[Source],
    labels: LabelsSpec,
    sink_factory: Callable[[], LineSink],
    *,
    concurrency: int = 16,
) -> OfflineResult:
    """Convert `sources` and write the valid lines, sorted by loop name, to a new sink.

    Nothing is written when no source is valid (`result.written` is None).
    """
    result = OfflineResult(inputs=len(sources))
    valid: dict[str, Converted] = {}
    for item in convert_sources(sources, labels, concurrency=concurrency):
        if isinstance(item, Quarantined):
            result.quarantined.append(item)
        elif item.loop_name in valid:
            result.quarantined.append(
                Quarantined(
                    QuarantineReason.DUPLICATE_LOOP,
                    f"loop {item.loop_name} was already read from "
                    f"{_source_of(valid[item.loop_name])}",
                    loop_name=item.loop_name,
                    source=_source_of(item),
                )
            )
        else:
            valid[item.loop_name] = item
            result.dropped.extend((item, box) for box in item.dropped)
            for score in item.workers:
                images, total = result.reviewers.get(score.worker, (0, 0.0))
                result.reviewers[score.worker] = (images + 1, total + score.agreement)
    if not valid:
        return result
    sink = sink_factory()
    try:
        for name in sorted(valid):
            sink.write(valid[name].line)
        result.written = sink.close()
    except BaseException:
        sink.abort()
        raise
    return result


def _source_of(item: Converted) -> str:
    return item.source or item.source_ref


def file_sink(path: Path) -> Callable[[], LineSink]:
    return lambda: FileLineSink(path)


def s3_sink(s3: S3, target: S3Location) -> Callable[[], LineSink]:
    return lambda: S3LineSink(s3, target=target)
