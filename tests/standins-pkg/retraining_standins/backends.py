"""Side channels of the emulator: S3 objects and CloudWatch alarm states.

The emulator writes model artifacts, A2I `output.json` files, seeded images and Batch
Transform outputs, checks that training inputs and model data exist, lists and reads
transform inputs, and reads alarm states during endpoint deployments. Against the moto
server it does so through boto3 on moto's *direct* listener (no faults, not in the request
log), so the emulator's own traffic never shows up as the operator's.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

from botocore.exceptions import ClientError


def parse_s3_uri(uri: str) -> tuple[str, str]:
    """`s3://bucket/key` -> `(bucket, key)`."""
    if not uri.startswith("s3://"):
        raise ValueError(f"not an s3:// URI: {uri!r}")
    bucket, _, key = uri[len("s3://") :].partition("/")
    if not bucket:
        raise ValueError(f"no bucket in {uri!r}")
    return bucket, key


class S3ObjectStore:
    """An `ObjectStore` over a boto3 S3 client (pointed at the S3 stand-in)."""

    def __init__(self, client: Any) -> None:
        self._client = client

    def put(self, uri: str, body: bytes, content_type: str = "application/octet-stream") -> None:
        bucket, key = parse_s3_uri(uri)
        self._client.put_object(Bucket=bucket, Key=key, Body=body, ContentType=content_type)

    def get(self, uri: str) -> bytes | None:
        bucket, key = parse_s3_uri(uri)
        try:
            response = self._client.get_object(Bucket=bucket, Key=key)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "NoSuchBucket", "404"):
                return None
            raise
        body: bytes = response["Body"].read()
        return body

    def exists(self, uri: str) -> bool:
        bucket, key = parse_s3_uri(uri)
        try:
            self._client.head_object(Bucket=bucket, Key=key)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code")
            if code in ("404", "NoSuchKey", "NoSuchBucket", "NotFound"):
                return False
            raise
        return True

    def exists_prefix(self, uri: str) -> bool:
        bucket, key = parse_s3_uri(uri)
        try:
            response = self._client.list_objects_v2(Bucket=bucket, Prefix=key, MaxKeys=1)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "NoSuchBucket":
                return False
            raise
        return int(response.get("KeyCount", 0)) > 0

    def list_keys(self, uri: str) -> list[str]:
        bucket, key = parse_s3_uri(uri)
        keys: list[str] = []
        try:
            for page in self._client.get_paginator("list_objects_v2").paginate(
                Bucket=bucket, Prefix=key
            ):
                keys += [item["Key"] for item in page.get("Contents", [])]
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "NoSuchBucket":
                return []
            raise
        return sorted(keys)


class MemoryObjectStore:
    """An in-memory `ObjectStore` (for running the emulator without the S3 stand-in)."""

    def __init__(self) -> None:
        self._objects: dict[str, bytes] = {}
        self._lock = threading.Lock()

    def put(self, uri: str, body: bytes, content_type: str = "application/octet-stream") -> None:
        parse_s3_uri(uri)
        with self._lock:
            self._objects[uri] = body

    def get(self, uri: str) -> bytes | None:
        with self._lock:
            return self._objects.get(uri)

    def exists(self, uri: str) -> bool:
        with self._lock:
            return uri in self._objects

    def exists_prefix(self, uri: str) -> bool:
        with self._lock:
            return any(k.startswith(uri) for k in self._objects)

    def list_keys(self, uri: str) -> list[str]:
        bucket, _ = parse_s3_uri(uri)
        with self._lock:
            return sorted(k[len(f"s3://{bucket}/") :] for k in self._objects if k.startswith(uri))

    def keys(self) -> list[str]:
        with self._lock:
            return sorted(self._objects)


class CloudWatchAlarms:
    """Alarm states read from CloudWatch (the moto stand-in) with `DescribeAlarms`."""

    def __init__(self, client: Any) -> None:
        self._client = client

    def states(self, names: Sequence[str]) -> dict[str, str]:
        result: dict[str, str] = {}
        names = list(dict.fromkeys(names))
        for start in range(0, len(names), 100):
            response = self._client.describe_alarms(AlarmNames=names[start : start + 100])
            for alarm in response.get("MetricAlarms", []) + response.get("CompositeAlarms", []):
                result[alarm["AlarmName"]] = alarm["StateValue"]
        return result


class StaticAlarms:
    """Alarm states set directly (when no CloudWatch stand-in runs)."""

    def __init__(self) -> None:
        self._states: dict[str, str] = {}
        self._lock = threading.Lock()

    def set(self, name: str, state: str) -> None:
        if state not in ("OK", "ALARM", "INSUFFICIENT_DATA"):
            raise ValueError(f"unknown alarm state {state!r}")
        with self._lock:
            self._states[name] = state

    def clear(self) -> None:
        with self._lock:
            self._states.clear()

    def states(self, names: Sequence[str]) -> dict[str, str]:
        with self._lock:
            return {n: self._states[n] for n in names if n in self._states}
