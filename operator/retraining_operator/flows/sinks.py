"""Streamed JSON Lines writers: to S3 (multipart when large, content-addressed or not) or a file.

Writers hold at most about one upload part in memory (`manifest.jsonl.PartBuffer`).

A content-addressed S3 writer names the object by the SHA-256 of its content,
`<directory>/<sha256>.jsonl`, and writes it only if it does not exist yet: the same
lines always give the same URI, and a URI never changes content. Small objects go there
with one conditional PUT; large ones are uploaded in parts to a staging key, then copied
server-side to the content address (known only once the last part is out) and the
staging object is deleted.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Protocol

from retraining_operator.aws.s3 import S3, MultipartUpload, S3Location
from retraining_operator.manifest.jsonl import DEFAULT_PART_SIZE, PartBuffer

CONTENT_TYPE = "application/jsonl"


@dataclass(frozen=True)
class WrittenManifest:
    uri: str
    lines: int
    size: int
    sha256: str


class LineSink(Protocol):
    def write(self, line: bytes | str) -> None: ...

    def close(self) -> WrittenManifest: ...

    def abort(self) -> None: ...


class S3LineSink:
    """Writes lines to S3; `target` for a fixed key, or `directory` for a content address."""

    def __init__(
        self,
        s3: S3,
        *,
        target: S3Location | None = None,
        directory: S3Location | None = None,
        staging: S3Location | None = None,
        part_size: int = DEFAULT_PART_SIZE,
    ) -> None:
        if (target is None) == (directory is None):
            raise ValueError("give exactly one of target or directory")
        if directory is not None and staging is None:
            raise ValueError("a content-addressed sink needs a staging key for large objects")
        self.s3 = s3
        self.target = target
        self.directory = directory
        self.staging = staging
        self.buffer = PartBuffer(part_size)
        self._upload: MultipartUpload | None = None

    def write(self, line: bytes | str) -> None:
        part = self.buffer.add(line)
        if part is not None:
            if self._upload is None:
                location = self.target or self.staging
                assert location is not None
                self._upload = self.s3.multipart(location, content_type=CONTENT_TYPE)
                self._upload.__enter__()
            self._upload.upload(part)

    def close(self) -> WrittenManifest:
        rest = self.buffer.take()
        digest = self.buffer.sha256
        if self._upload is None:
            if self.target is not None:
                self.s3.put(self.target, rest, content_type=CONTENT_TYPE)
                final = self.target
            else:
                assert self.directory is not None
                final = self.directory.child(f"{digest}.jsonl")
                self.s3.put_if_absent(final, rest, content_type=CONTENT_TYPE)
        else:
            upload, self._upload = self._upload, None
            try:
                if rest:
                    upload.upload(rest)
                upload.complete()
            finally:
                upload.__exit__(None, None, None)
            if self.target is not None:
                final = self.target
            else:
                assert self.directory is not None
                assert self.staging is not None
                final = self.directory.child(f"{digest}.jsonl")
                if not self.s3.exists(final):
                    self.s3.copy(self.staging, final, size=self.buffer.size)
                self.s3.delete(self.staging)
        return WrittenManifest(final.uri, self.buffer.lines, self.buffer.size, digest)

    def abort(self) -> None:
        if self._upload is not None:
            upload, self._upload = self._upload, None
            upload.__exit__(RuntimeError, RuntimeError("aborted"), None)

    def __enter__(self) -> S3LineSink:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if kind is not None:
            self.abort()


class FileLineSink:
    """Writes lines to a local file atomically (temporary file, then rename)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.buffer = PartBuffer(1024 * 1024)
        directory = path.parent if str(path.parent) else Path(".")
        directory.mkdir(parents=True, exist_ok=True)
        handle, temp = tempfile.mkstemp(prefix=f".{path.name}.", dir=directory)
        self._temp = Path(temp)
        self._file = os.fdopen(handle, "wb")

    def write(self, line: bytes | str) -> None:
        part = self.buffer.add(line)
        if part is not None:
            self._file.write(part)

    def close(self) -> WrittenManifest:
        self._file.write(self.buffer.take())
        self._file.close()
        self._temp.replace(self.path)
        return WrittenManifest(
            str(self.path), self.buffer.lines, self.buffer.size, self.buffer.sha256
        )

    def abort(self) -> None:
        self._file.close()
        self._temp.unlink(missing_ok=True)
