"""Gateway to S3: get/put (conditional), bounded and streaming reads, listing, multipart, copies.

Every failed botocore call (an AWS error or no answer at all) becomes an
`aws.errors.AwsError` subclass by the one classification in `aws/errors.py`; S3's own
addition is a failed conditional write (If-Match / If-None-Match), `WriteConflict`. A
connection that drops while a body is read is `Unavailable` like any other transport
failure (botocore retried the request, not the body).

Objects that come from outside (A2I outputs, the ledger) are read with `open()`: the
size and ETag are known from the response headers before any byte of the body is read,
and `read_at_most(limit)` never takes more than `limit + 1` bytes off the connection.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from retraining_operator.aws.errors import (
    AWS_CALL_ERRORS,
    AwsError,
    AwsRetryLater,
    NotFound,
    map_client_error,
)

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

READ_CHUNK = 256 * 1024
COPY_OBJECT_LIMIT = 5 * 1024**3  # CopyObject copies at most 5 GiB; larger needs part copies
_CONFLICT_CODES = frozenset({"PreconditionFailed", "ConditionalRequestConflict", "412"})
_URI = re.compile(r"^s3://(?P<bucket>[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9])(?:/(?P<key>.*))?$")


class WriteConflict(AwsRetryLater):
    """A conditional write lost: the object changed (If-Match) or exists (If-None-Match)."""


class ObjectTooLarge(Exception):
    """An object is larger than its reader allows (`size` is at least that; body unread).

    Not an AWS error: the content is the problem, and the caller decides what to do.
    """

    def __init__(self, location: S3Location, size: int, etag: str, limit: int) -> None:
        super().__init__(
            f"{location.uri} has {size} bytes, more than the {limit} bytes allowed here"
        )
        self.location = location
        self.size = size
        self.etag = etag
        self.limit = limit


@dataclass(frozen=True)
class S3Location:
    bucket: str
    key: str

    @classmethod
    def parse(cls, uri: str) -> S3Location:
        match = _URI.match(uri)
        if not match:
            raise ValueError(f"not an S3 URI (s3://bucket/key): {uri!r}")
        return cls(match["bucket"], match["key"] or "")

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.key}"

    def child(self, *parts: str) -> S3Location:
        """A key below this one as a prefix (`a/b` + `c` -> `a/b/c`)."""
        base = self.key.rstrip("/")
        tail = "/".join(part.strip("/") for part in parts)
        return S3Location(self.bucket, f"{base}/{tail}" if base else tail)


def _error(error: ClientError | BotoCoreError, operation: str) -> AwsError:
    """`errors.map_client_error`, except a lost conditional write (412): `WriteConflict`."""
    if isinstance(error, ClientError):
        code = str(error.response.get("Error", {}).get("Code", ""))
        status = int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
        if code in _CONFLICT_CODES or status == 412:
            message = str(error.response.get("Error", {}).get("Message", "")) or str(error)
            text = f"{operation}: {code}: {message}"
            return WriteConflict(text, code=code, operation=operation)
    return map_client_error(error, operation)


class StoredObject:
    """One GetObject response whose body has not been read yet (a context manager).

    `size` (ContentLength; None if the response had none) and `etag` come from the
    headers. Leaving the context closes the body, so an object that is not read (too
    large) costs no more than its headers.
    """

    def __init__(self, location: S3Location, response: Any) -> None:
        self.location = location
        length = response.get("ContentLength")
        self.size: int | None = None if length is None else int(length)
        self.etag = str(response.get("ETag", ""))
        self._body = response["Body"]

    def read_at_most(self, limit: int) -> bytes | None:
        """The whole body if it has at most `limit` bytes, else None.

        Reads in chunks and stops after `limit + 1` bytes, whatever ContentLength said.
        """
        chunks: list[bytes] = []
        taken = 0
        try:
            while taken <= limit:
                chunk = self._body.read(min(READ_CHUNK, limit + 1 - taken))
                if not chunk:
                    break
                chunks.append(chunk)
                taken += len(chunk)
        except AWS_CALL_ERRORS as error:
            raise _error(error, f"GetObject {self.location.uri}") from error
        if taken > limit:
            return None
        return b"".join(chunks)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._body.close()

    def __enter__(self) -> StoredObject:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


class S3:
    """S3 calls for one client (thread-safe: share it across worker threads)."""

    def __init__(self, client: S3Client) -> None:
        self.client = client

    def open(self, location: S3Location) -> StoredObject:
        """GetObject, headers only so far: read the body with `read_at_most`, then close it.

        Raises `NotFound` when the object (or its bucket) does not exist.
        """
        try:
            response = self.client.get_object(Bucket=location.bucket, Key=location.key)
        except AWS_CALL_ERRORS as error:
            raise _error(error, f"GetObject {location.uri}") from error
        return StoredObject(location, response)

    def get(self, location: S3Location) -> bytes:
        """The object's bytes. Raises `NotFound` when it does not exist."""
        try:
            response = self.client.get_object(Bucket=location.bucket, Key=location.key)
            return response["Body"].read()
        except AWS_CALL_ERRORS as error:
            raise _error(error, f"GetObject {location.uri}") from error

    def get_with_etag(self, location: S3Location, *, limit: int) -> tuple[bytes, str] | None:
        """(bytes, ETag), or None when the object does not exist.

        A missing bucket is not a missing object: it raises `NotFound`. An object larger
        than `limit` bytes raises `ObjectTooLarge` without its body being read.
        """
        try:
            stored = self.open(location)
        except NotFound as error:
            if error.code != "NoSuchBucket":
                return None
            raise
        with stored:
            size = stored.size
            data = None if size is not None and size > limit else stored.read_at_most(limit)
            if data is None:
                raise ObjectTooLarge(location, max(size or 0, limit + 1), stored.etag, limit)
            return data, stored.etag

    def iter_lines(self, location: S3Location) -> Iterator[bytes]:
        """The object's lines (without newlines), streamed; never the whole object in memory."""
        try:
            response = self.client.get_object(Bucket=location.bucket, Key=location.key)
            body = response["Body"]
            pending = b""
            for chunk in body.iter_chunks(READ_CHUNK):
                pending += chunk
                *lines, pending = pending.split(b"\n")
                yield from lines
            if pending:
                yield pending
        except AWS_CALL_ERRORS as error:
            raise _error(error, f"GetObject {location.uri}") from error

    def put(
        self,
        location: S3Location,
        body: bytes,
        *,
        content_type: str = "application/json",
        if_match: str | None = None,
        if_none_match: bool = False,
    ) -> str:
        """Write the object; returns its ETag. Conditional writes raise `WriteConflict`."""
        kwargs: dict[str, Any] = {
            "Bucket": location.bucket,
            "Key": location.key,
            "Body": body,
            "ContentType": content_type,
        }
        if if_match is not None:
            kwargs["IfMatch"] = if_match
        if if_none_match:
            kwargs["IfNoneMatch"] = "*"
        try:
            return str(self.client.put_object(**kwargs)["ETag"])
        except AWS_CALL_ERRORS as error:
            raise _error(error, f"PutObject {location.uri}") from error

    def put_if_absent(
        self, location: S3Location, body: bytes, *, content_type: str = "application/json"
    ) -> bool:
        """Create the object unless it exists (content-addressed keys); True if written."""
        try:
            self.put(location, body, content_type=content_type, if_none_match=True)
        except WriteConflict:
            return False
        return True

    def exists(self, location: S3Location) -> bool:
        try:
            self.client.head_object(Bucket=location.bucket, Key=location.key)
        except AWS_CALL_ERRORS as error:
            mapped = _error(error, f"HeadObject {location.uri}")
            if isinstance(mapped, NotFound):
                return False
            raise mapped from error
        return True

    def size(self, location: S3Location) -> int:
        try:
            head = self.client.head_object(Bucket=location.bucket, Key=location.key)
        except AWS_CALL_ERRORS as error:
            raise _error(error, f"HeadObject {location.uri}") from error
        return int(head["ContentLength"])

    def list(self, prefix: S3Location) -> Iterator[S3Location]:
        """Every object key under the prefix (all pages)."""
        paginator = self.client.get_paginator("list_objects_v2")
        try:
            for page in paginator.paginate(Bucket=prefix.bucket, Prefix=prefix.key):
                for item in page.get("Contents", []):
                    yield S3Location(prefix.bucket, item["Key"])
        except AWS_CALL_ERRORS as error:
            raise _error(error, f"ListObjectsV2 {prefix.uri}") from error

    def copy(self, source: S3Location, target: S3Location, *, size: int) -> None:
        """Server-side copy (multipart part copies above 5 GiB)."""
        try:
            if size <= COPY_OBJECT_LIMIT:
                self.client.copy_object(
                    Bucket=target.bucket,
                    Key=target.key,
                    CopySource={"Bucket": source.bucket, "Key": source.key},
                )
            else:
                self.client.copy(
                    {"Bucket": source.bucket, "Key": source.key}, target.bucket, target.key
                )
        except AWS_CALL_ERRORS as error:
            raise _error(error, f"CopyObject {source.uri} -> {target.uri}") from error

    def delete(self, location: S3Location) -> None:
        try:
            self.client.delete_object(Bucket=location.bucket, Key=location.key)
        except AWS_CALL_ERRORS as error:
            raise _error(error, f"DeleteObject {location.uri}") from error

    def multipart(
        self, location: S3Location, *, content_type: str = "application/jsonl"
    ) -> MultipartUpload:
        return MultipartUpload(self, location, content_type)


class MultipartUpload:
    """One multipart upload: parts go out as they come; aborted on error.

    Use as a context manager: leaving it with an exception aborts the upload, so no
    half-written object (and no billed orphan parts) is left behind.
    """

    def __init__(self, s3: S3, location: S3Location, content_type: str) -> None:
        self.s3 = s3
        self.location = location
        self.content_type = content_type
        self.upload_id: str | None = None
        self.parts: list[dict[str, Any]] = []

    def __enter__(self) -> MultipartUpload:
        try:
            response = self.s3.client.create_multipart_upload(
                Bucket=self.location.bucket,
                Key=self.location.key,
                ContentType=self.content_type,
            )
        except AWS_CALL_ERRORS as error:
            raise _error(error, f"CreateMultipartUpload {self.location.uri}") from error
        self.upload_id = response["UploadId"]
        return self

    def upload(self, data: bytes) -> None:
        assert self.upload_id is not None, "use MultipartUpload as a context manager"
        number = len(self.parts) + 1
        try:
            response = self.s3.client.upload_part(
                Bucket=self.location.bucket,
                Key=self.location.key,
                UploadId=self.upload_id,
                PartNumber=number,
                Body=data,
            )
        except AWS_CALL_ERRORS as error:
            raise _error(error, f"UploadPart {number} {self.location.uri}") from error
        self.parts.append({"ETag": response["ETag"], "PartNumber": number})

    def complete(self) -> None:
        assert self.upload_id is not None, "use MultipartUpload as a context manager"
        try:
            self.s3.client.complete_multipart_upload(
                Bucket=self.location.bucket,
                Key=self.location.key,
                UploadId=self.upload_id,
                MultipartUpload={"Parts": self.parts},  # type: ignore[typeddict-item]
            )
        except AWS_CALL_ERRORS as error:
            raise _error(error, f"CompleteMultipartUpload {self.location.uri}") from error
        self.upload_id = None

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self.upload_id is None:
            return
        upload_id, self.upload_id = self.upload_id, None
        # The original error matters (an abort on a dead network fails too); a lifecycle rule
        # cleans up parts an abort leaves behind.
        with contextlib.suppress(*AWS_CALL_ERRORS):
            self.s3.client.abort_multipart_upload(
                Bucket=self.location.bucket, Key=self.location.key, UploadId=upload_id
            )
