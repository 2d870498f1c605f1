"""S3, STS and CloudWatch on moto's server, behind a small fault/log middleware.

This is `moto.server.ThreadedMotoServer`'s recipe (moto's `DomainDispatcherApplication` on a
threaded werkzeug server) with two listeners on the same in-process backends:

* the *public* one (what `AWS_ENDPOINT_URL_S3/_STS/_CLOUDWATCH` point at): every call goes
  through fault injection (S3 throttling is `503 SlowDown`) and into the request log;
* the *direct* one: plain moto, for the stand-ins' own traffic and test seeding.

Single-account mode (default): moto keeps CloudWatch (and most services) per account and maps
credentials from `AssumeRole` to the role's account. So that an operator assuming a per-policy
role sees the alarms and metrics the test wrote, the middleware signs every non-STS request as
the default account (moto does not verify signatures). STS itself is left untouched, so
`GetCallerIdentity` still reports the assumed role.
"""

from __future__ import annotations

import io
import json
import math
import re
import time
import uuid
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qs
from xml.sax.saxutils import escape

from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)

from retraining_standins.clock import Clock
from retraining_standins.faults import FaultDecision, Faults
from retraining_standins.requestlog import Call, RequestLog, signing_access_key
from retraining_standins.server import ServerThread

_CREDENTIAL = re.compile(r"Credential=([^/,\s]+)/(\d{8})/([^/]+)/([^/]+)/aws4_request")
_SIGNING_TO_SERVICE = {"monitoring": "cloudwatch"}
_DEFAULT_ACCESS_KEY = "AKIAEMULATEDDEFAULT0"
_BUCKET_SUBRESOURCES = {
    "tagging": "BucketTagging",
    "policy": "BucketPolicy",
    "versioning": "BucketVersioning",
    "lifecycle": "BucketLifecycleConfiguration",
    "notification": "BucketNotificationConfiguration",
    "acl": "BucketAcl",
    "encryption": "BucketEncryption",
    "cors": "BucketCors",
    "website": "BucketWebsite",
    "logging": "BucketLogging",
    "ownershipControls": "BucketOwnershipControls",
    "publicAccessBlock": "PublicAccessBlock",
}
_LIST_PARAMS = {
    "prefix": "Prefix",
    "delimiter": "Delimiter",
    "max-keys": "MaxKeys",
    "continuation-token": "ContinuationToken",
    "start-after": "StartAfter",
    "marker": "Marker",
}


class QuietMotoHandler(MotoRequestHandler):
    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        return None


def signing_service(environ: dict[str, Any]) -> str:
    auth = environ.get("HTTP_AUTHORIZATION", "")
    match = _CREDENTIAL.search(auth)
    if match is None:
        query = parse_qs(environ.get("QUERY_STRING", ""))
        credential = (query.get("X-Amz-Credential") or [""])[0]
        parts = credential.split("/")
        if len(parts) == 5:
            return str(_SIGNING_TO_SERVICE.get(parts[3], parts[3]))
        return "unknown"
    name = match.group(4)
    return _SIGNING_TO_SERVICE.get(name, name)


def classify_s3(
    method: str, path: str, query: dict[str, list[str]], headers: dict[str, str]
) -> tuple[str, dict[str, Any]]:
    """S3 REST request -> (operation name, {Bucket, Key, list params}); path-style only."""
    raw = path.encode("latin-1", "replace").decode("utf-8", "replace")
    bucket, _, key = raw.lstrip("/").partition("/")
    params: dict[str, Any] = {}
    if bucket:
        params["Bucket"] = bucket
    if key:
        params["Key"] = key
    verb = {"GET": "Get", "PUT": "Put", "DELETE": "Delete"}.get(method, "")
    if not bucket:
        return "ListBuckets", params
    if not key:
        for sub, name in _BUCKET_SUBRESOURCES.items():
            if sub in query and verb:
                return f"{verb}{name}", params
        if method == "GET":
            params.update({v: query[k][0] for k, v in _LIST_PARAMS.items() if k in query})
            if "list-type" in query:
                return "ListObjectsV2", params
            if "location" in query:
                return "GetBucketLocation", params
            if "uploads" in query:
                return "ListMultipartUploads", params
            if "versions" in query:
                return "ListObjectVersions", params
            return "ListObjects", params
        simple = {"PUT": "CreateBucket", "DELETE": "DeleteBucket", "HEAD": "HeadBucket"}
        if method in simple:
            return simple[method], params
        if method == "POST" and "delete" in query:
            return "DeleteObjects", params
        return f"{method}Bucket", params
    copy = "x-amz-copy-source" in {h.lower() for h in headers}
    if method == "GET":
        if "tagging" in query:
            return "GetObjectTagging", params
        if "acl" in query:
            return "GetObjectAcl", params
        if "uploadId" in query:
            return "ListParts", params
        return "GetObject", params
    if method == "HEAD":
        return "HeadObject", params
    if method == "PUT":
        if "partNumber" in query:
            return ("UploadPartCopy" if copy else "UploadPart"), params
        if "tagging" in query:
            return "PutObjectTagging", params
        if "acl" in query:
            return "PutObjectAcl", params
        return ("CopyObject" if copy else "PutObject"), params
    if method == "DELETE":
        if "uploadId" in query:
            return "AbortMultipartUpload", params
        if "tagging" in query:
            return "DeleteObjectTagging", params
        return "DeleteObject", params
    if method == "POST":
        if "uploads" in query:
            return "CreateMultipartUpload", params
        if "uploadId" in query:
            return "CompleteMultipartUpload", params
        if "restore" in query:
            return "RestoreObject", params
    return f"{method}Object", params


def _buffer_body(environ: dict[str, Any]) -> bytes:
    length = int(environ.get("CONTENT_LENGTH") or 0)
    stream = environ["wsgi.input"]
    if length:
        body: bytes = stream.read(length)
    elif environ.get("wsgi.input_terminated"):
        body = stream.read()
    else:
        body = b""
    environ["wsgi.input"] = io.BytesIO(body)
    environ["CONTENT_LENGTH"] = str(len(body))
    return body


def classify(service: str, environ: dict[str, Any]) -> tuple[str, dict[str, Any], str]:
    """-> (operation, params for the log, wire protocol: s3 | query | json | cbor)."""
    method = environ.get("REQUEST_METHOD", "GET")
    path = environ.get("PATH_INFO", "/")
    query = parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True)
    if service == "s3":
        headers = {
            k[5:].replace("_", "-").lower(): v for k, v in environ.items() if k.startswith("HTTP_")
        }
        operation, params = classify_s3(method, path, query, headers)
        return operation, params, "s3"
    target = environ.get("HTTP_X_AMZ_TARGET", "")
    if target and "." in target:
        body = _buffer_body(environ)
        try:
            params = json.loads(body or b"{}")
        except ValueError:
            params = {}
        return target.rsplit(".", 1)[1], params if isinstance(params, dict) else {}, "json"
    cbor = re.search(r"/service/[^/]+/operation/([^/]+)$", path)
    if cbor:
        _buffer_body(environ)
        return cbor.group(1), {}, "cbor"
    form: dict[str, list[str]] = dict(query)
    if method == "POST":
        body = _buffer_body(environ)
        form.update(parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True))
    action = (form.pop("Action", None) or ["Unknown"])[0]
    form.pop("Version", None)
    return action, {k: v[0] if len(v) == 1 else v for k, v in form.items()}, "query"


def _cbor_text(text: str) -> bytes:
    data = text.encode()
    size = len(data)
    if size < 24:
        head = bytes([0x60 + size])
    elif size < 256:
        head = bytes([0x78, size])
    else:
        head = bytes([0x79]) + size.to_bytes(2, "big")
    return head + data


def _cbor_map(values: dict[str, str]) -> bytes:
    out = bytes([0xA0 + len(values)])
    for key, value in values.items():
        out += _cbor_text(key) + _cbor_text(value)
    return out


def render_error(
    service: str, protocol: str, decision: FaultDecision
) -> tuple[int, str, list[tuple[str, str]], bytes]:
    """An injected fault in the service's own error shape -> (status, code, headers, body)."""
    request_id = str(uuid.uuid4())
    if decision.kind == "throttle":
        if service == "s3":
            status, code, message = 503, "SlowDown", "Please reduce your request rate."
        else:
            status, code, message = 400, "Throttling", "Rate exceeded"
    else:
        status = decision.status
        if decision.code:
            code = decision.code
        elif status == 503:
            code = "ServiceUnavailable"
        elif service == "s3":
            code = "InternalError"
        elif service == "cloudwatch":
            code = "InternalServiceError"
        else:
            code = "InternalFailure"
        message = "We encountered an internal error. Please try again."
    message = decision.message or message
    headers = [("x-amzn-RequestId", request_id)]
    fault = "Sender" if status < 500 else "Receiver"
    if protocol == "s3":
        headers += [("Content-Type", "application/xml"), ("x-amz-request-id", request_id)]
        body = (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            f"<Error><Code>{escape(code)}</Code><Message>{escape(message)}</Message>"
            f"<RequestId>{request_id}</RequestId><HostId>emulated</HostId></Error>"
        ).encode()
    elif protocol == "json":
        headers += [
            ("Content-Type", "application/x-amz-json-1.0"),
            ("x-amzn-query-error", f"{code};{fault}"),
        ]
        body = json.dumps({"__type": code, "message": message}).encode()
    elif protocol == "cbor":
        headers += [
            ("Content-Type", "application/cbor"),
            ("smithy-protocol", "rpc-v2-cbor"),
            ("x-amzn-query-error", f"{code};{fault}"),
        ]
        body = _cbor_map({"__type": code, "message": message})
    else:
        headers.append(("Content-Type", "text/xml"))
        body = (
            "<ErrorResponse><Error>"
            f"<Type>{fault}</Type><Code>{escape(code)}</Code><Message>{escape(message)}</Message>"
            f"</Error><RequestId>{request_id}</RequestId></ErrorResponse>"
        ).encode()
    return status, code, headers, body


_REASONS = {400: "Bad Request", 429: "Too Many Requests", 500: "Internal Server Error"}
_REASONS[503] = "Service Unavailable"


def _error_code(body: bytes) -> str | None:
    match = re.search(rb"<Code>([^<]+)</Code>", body)
    if match:
        return match.group(1).decode("utf-8", "replace")
    try:
        data = json.loads(body)
    except ValueError:
        return None
    if isinstance(data, dict) and isinstance(data.get("__type"), str):
        return str(data["__type"]).rsplit("#", 1)[-1]
    return None


class MotoFront:
    """WSGI middleware in front of moto: fault injection, request log, single account."""

    def __init__(
        self,
        app: Callable[[dict[str, Any], Any], Iterable[bytes]],
        faults: Faults,
        log: RequestLog,
        clock: Clock,
        *,
        single_account: bool = True,
    ) -> None:
        self.app = app
        self.faults = faults
        self.log = log
        self.clock = clock
        self.single_account = single_account

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        if environ.get("PATH_INFO", "").startswith("/moto-api"):
            return self.app(environ, start_response)
        service = signing_service(environ)
        operation, params, protocol = classify(service, environ)
        access_key = signing_access_key(environ.get("HTTP_AUTHORIZATION"))
        if self.single_account and service != "sts" and "HTTP_AUTHORIZATION" in environ:
            environ["HTTP_AUTHORIZATION"] = _CREDENTIAL.sub(
                lambda m: (
                    f"Credential={_DEFAULT_ACCESS_KEY}/{m.group(2)}/{m.group(3)}/"
                    f"{m.group(4)}/aws4_request"
                ),
                environ["HTTP_AUTHORIZATION"],
            )
        seq, wall = self.log.ticket()
        arrived = self.clock.now()
        decision = self.faults.decide(service, operation)
        if decision.latency:
            time.sleep(decision.latency)
        if decision.fails:
            status, code, headers, body = render_error(service, protocol, decision)
            if environ.get("REQUEST_METHOD") == "HEAD":
                body = b""
            headers.append(("Content-Length", str(len(body))))
            start_response(f"{status} {_REASONS.get(status, 'Error')}", headers)
            self._record(
                seq, wall, arrived, service, operation, params, status, code, True, access_key
            )
            return [body]
        captured: dict[str, int] = {}

        def capture(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            captured["status"] = int(status.split(" ", 1)[0])
            return start_response(status, headers, exc_info)

        result = self.app(environ, capture)
        status = captured.get("status", 500)
        error: str | None = None
        if status >= 400:
            chunks = list(result)
            close = getattr(result, "close", None)
            if close is not None:
                close()
            body = b"".join(chunks)
            error = _error_code(body) or str(status)
            result = [body]
        self._record(
            seq, wall, arrived, service, operation, params, status, error, False, access_key
        )
        return result

    def _record(
        self,
        seq: int,
        wall: float,
        arrived: Any,
        service: str,
        operation: str,
        params: dict[str, Any],
        status: int,
        error: str | None,
        injected: bool,
        access_key: str | None = None,
    ) -> None:
        self.log.record(
            Call(
                seq=seq,
                service=service,
                operation=operation,
                params=params,
                time=arrived,
                wall_time=wall,
                status=status,
                error=error,
                injected=injected,
                access_key=access_key,
            )
        )


def _quicken_sqs_clock() -> None:
    """moto's SQS computes the queue's attributes (every message's visibility, through a
    datetime-based `unix_time`) on each SendMessage: 5,000 queued events made a send take
    ~0.1 s. The same wall clock from `time.time()` is ~10x cheaper; nothing else changes."""
    from moto.sqs import models

    if getattr(models, "_standins_quick_clock", False):
        return
    slow = models.unix_time  # type: ignore[attr-defined]

    def unix_time(dt: Any = None) -> float:
        return time.time() if dt is None else float(slow(dt))

    def unix_time_millis(dt: Any = None) -> float:
        return unix_time(dt) * 1000.0

    setattr(models, "unix_time", unix_time)  # noqa: B010 - moto's module globals
    setattr(models, "unix_time_millis", unix_time_millis)  # noqa: B010
    setattr(models, "_standins_quick_clock", True)  # noqa: B010


_PERCENTILE = re.compile(r"^p(\d{1,2}(\.\d+)?)$")


def _percentile_statistics() -> None:
    """CloudWatch answers percentile statistics (`p99`) for any metric; moto answers only
    Sum/Average/Minimum/Maximum/SampleCount (a `p99` query returned nulls). Single values
    get the nearest-rank percentile, as CloudWatch computes it from raw values. A statistic
    set carries no distribution, so its period's percentile is its Maximum: the stand-ins
    publish ModelLatency with Maximum = the minute's p99 (`serving.py`), so a one-minute
    `p99` is exact and a longer period's is the largest minute's p99 (stand-in choice)."""
    from moto.cloudwatch import models

    if getattr(models, "_standins_percentiles", False):
        return
    basic = models.Statistics.get_statistics_for_type

    def get_statistics_for_type(self: Any, stat: str) -> Any:
        match = _PERCENTILE.match(stat)
        if match is None:
            return basic(self, stat)
        values = sorted(self.metric_single_values_list)
        sets = [s.max for s in self.metric_aggregated_list]
        if not values and not sets:
            return None
        candidates = []
        if values:
            rank = max(1, math.ceil(float(match.group(1)) / 100.0 * len(values)))
            candidates.append(values[rank - 1])
        return max([*candidates, *sets])

    models.Statistics.get_statistics_for_type = get_statistics_for_type  # type: ignore[method-assign]
    setattr(models, "_standins_percentiles", True)  # noqa: B010


class MotoStandin:
    """moto's S3/STS/CloudWatch backends on two loopback listeners (public and direct)."""

    def __init__(
        self,
        faults: Faults,
        log: RequestLog,
        clock: Clock,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        single_account: bool = True,
    ) -> None:
        _quicken_sqs_clock()
        _percentile_statistics()
        self._app = DomainDispatcherApplication(create_backend_app)
        front = MotoFront(self._app, faults, log, clock, single_account=single_account)
        self.public = ServerThread(
            front, host=host, port=port, name="moto-public", handler=QuietMotoHandler
        )
        self.direct = ServerThread(
            self._app, host=host, port=0, name="moto-direct", handler=QuietMotoHandler
        )

    def start(self) -> None:
        self.public.start()
        self.direct.start()

    @property
    def url(self) -> str:
        """What the operator talks to (faults, request log)."""
        return self.public.url

    @property
    def direct_url(self) -> str:
        """Plain moto (no faults, not logged): for setup and the emulator's own calls."""
        return self.direct.url

    def reset(self) -> None:
        """Drop every bucket, object, alarm and metric (moto's `/moto-api/reset`)."""
        import urllib.request

        request = urllib.request.Request(f"{self.direct_url}/moto-api/reset", method="POST")
        with urllib.request.urlopen(request, timeout=30) as response:
            response.read()

    def stop(self) -> None:
        self.public.stop()
        self.direct.stop()
