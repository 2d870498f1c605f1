"""The emulator's HTTP front: SageMaker and Application Auto Scaling JSON 1.1, A2I runtime
REST-JSON, and `/_standins/`.

* SageMaker: `POST /` with `X-Amz-Target: SageMaker.<Operation>`, JSON 1.1 bodies, errors as
  `{"__type": code, "message": ...}`. Application Auto Scaling the same way, with
  `X-Amz-Target: AnyScaleFrontendService.<Operation>`.
* A2I runtime: the REST routes of botocore's model (`GET /human-loops`, `GET|DELETE
  /human-loops/{HumanLoopName}`, `POST /human-loops`, `POST /human-loops/stop`), errors with
  the `x-amzn-ErrorType` header.
* `/_standins/...`: the control API (clock, faults, request log, reset, seeding) for processes
  that do not share memory with the stand-ins (benchmarks, the demo); see `control.py`.

Every call: parse against the input shape -> fault injection -> botocore validation plus model
constraints -> handler (under the emulator lock) -> strict serialization against the output
shape -> request log.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Any

from botocore.model import OperationModel
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

from retraining_standins.detector import ModelQuality, quality_table
from retraining_standins.emulator import Emulator
from retraining_standins.errors import ApiError
from retraining_standins.faults import FaultDecision, FaultRule, Faults
from retraining_standins.model import A2I_RUNTIME, AUTOSCALING, SAGEMAKER, service_model
from retraining_standins.requestlog import Call, RequestLog, signing_access_key
from retraining_standins.serving import ModelServing, serving_table
from retraining_standins.validation import validate_params
from retraining_standins.wire import (
    ShapeError,
    parse_json_body,
    parse_rest_request,
    serialize_output,
)

log = logging.getLogger(__name__)
JSON11 = "application/x-amz-json-1.1"
WSGIApp = Callable[[dict[str, Any], Any], Iterable[bytes]]


class QuietHandler(WSGIRequestHandler):
    """No access log lines on stderr (the request log is the record)."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        return None


class ServerThread:
    """A threaded werkzeug server on a loopback port, served from a daemon thread."""

    def __init__(
        self,
        app: WSGIApp,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        name: str = "standin",
        handler: type[WSGIRequestHandler] = QuietHandler,
    ) -> None:
        self._app = app
        self._host = host
        self._port = port
        self._name = name
        self._handler = handler
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._server = make_server(
            self._host, self._port, self._app, threaded=True, request_handler=self._handler
        )
        self._thread = threading.Thread(
            target=self._server.serve_forever, name=self._name, daemon=True
        )
        self._thread.start()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError(f"{self._name} is not started")
        return int(self._server.server_port)

    @property
    def url(self) -> str:
        return f"http://{self._host}:{self.port}"

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None
        self._thread = None


def injected_error(service: str, decision: FaultDecision) -> ApiError:
    """How SageMaker / A2I answer throttling and server errors."""
    if decision.kind == "throttle":
        status = 429 if service == A2I_RUNTIME else 400
        return ApiError("ThrottlingException", decision.message or "Rate exceeded", status)
    if decision.code:
        return ApiError(decision.code, decision.message or "Injected error", decision.status)
    if decision.status == 503:
        return ApiError(
            "ServiceUnavailable", decision.message or "Service is unavailable", decision.status
        )
    code = "InternalServerException" if service == A2I_RUNTIME else "InternalFailure"
    message = decision.message or "We encountered an internal error. Please try again."
    return ApiError(code, message, decision.status)


class _Route:
    def __init__(self, operation: OperationModel) -> None:
        self.operation = operation
        self.method = str(operation.http["method"])
        uri = str(operation.http["requestUri"]).split("?", 1)[0]
        pattern = re.sub(r"\{(\w+)\+?\}", lambda m: f"(?P<{m.group(1)}>[^/]+)", uri)
        self.regex = re.compile(f"^{pattern}/?$")
        self.literal = len(re.sub(r"\{[^}]+\}", "", uri))


class EmulatorApp:
    """The WSGI application of the SageMaker + A2I emulator."""

    def __init__(
        self,
        emulator: Emulator,
        faults: Faults,
        log_: RequestLog,
        control: ControlApi | None = None,
    ) -> None:
        self.emulator = emulator
        self.faults = faults
        self.log = log_
        self.control = control
        a2i = service_model(A2I_RUNTIME)
        routes = [_Route(a2i.operation_model(name)) for name in a2i.operation_names]
        self._routes = sorted(routes, key=lambda r: -r.literal)

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        request = Request(environ)
        try:
            response = self.dispatch(request)
        except Exception:  # last resort: never kill the server thread
            log.exception("stand-in failed on %s %s", request.method, request.path)
            response = _json_response(500, {"message": traceback.format_exc()})
        result: Iterable[bytes] = response(environ, start_response)
        return result

    def dispatch(self, request: Request) -> Response:
        path = request.path
        if path.startswith("/_standins/") or path == "/_standins":
            if self.control is None:
                return _json_response(404, {"message": "no control API"})
            return self.control.handle(request)
        target = request.headers.get("X-Amz-Target", "")
        if target.startswith("SageMaker."):
            return self._json11(request, SAGEMAKER, target.split(".", 1)[1])
        if target.startswith("AnyScaleFrontendService."):
            return self._json11(request, AUTOSCALING, target.split(".", 1)[1])
        if path == "/human-loops" or path.startswith("/human-loops/"):
            return self._a2i(request)
        return _json_response(
            404,
            {"__type": "UnknownOperationException", "message": f"No route for {path}"},
            content_type=JSON11,
        )

    # -- protocols -------------------------------------------------------------------------
    def _json11(self, request: Request, service: str, operation: str) -> Response:
        model = service_model(service)
        if operation not in model.operation_names:
            return self._json11_error(ApiError("UnknownOperationException", operation, 400))
        op_model = model.operation_model(operation)
        body = request.get_data()
        handlers = (
            self.emulator.sagemaker_operations
            if service == SAGEMAKER
            else self.emulator.autoscaling_operations
        )
        status, payload = self._invoke(
            service,
            op_model,
            handlers.get(operation),
            lambda: parse_json_body(body, op_model.input_shape),
            "unixTimestamp",
            signing_access_key(request.headers.get("Authorization")),
        )
        if isinstance(payload, ApiError):
            return self._json11_error(payload)
        return _json_response(status, payload, content_type=JSON11)

    def _json11_error(self, error: ApiError) -> Response:
        return _json_response(
            error.status, {"__type": error.code, "message": error.message}, content_type=JSON11
        )

    def _a2i(self, request: Request) -> Response:
        for route in self._routes:
            match = route.regex.match(request.path)
            if match and route.method == request.method:
                break
        else:
            error = ApiError("UnknownOperationException", f"{request.method} {request.path}", 404)
            return self._rest_error(error)
        op_model = route.operation
        body = request.get_data()
        query = request.args.to_dict(flat=False)
        headers = {k: v for k, v in request.headers.items()}
        path_params = match.groupdict()
        status, payload = self._invoke(
            A2I_RUNTIME,
            op_model,
            self.emulator.a2i_operations.get(op_model.name),
            lambda: parse_rest_request(op_model, path_params, query, headers, body),
            "unixTimestamp",
            signing_access_key(request.headers.get("Authorization")),
        )
        if isinstance(payload, ApiError):
            return self._rest_error(payload)
        return _json_response(status, payload)

    def _rest_error(self, error: ApiError) -> Response:
        response = _json_response(error.status, {"message": error.message})
        response.headers["x-amzn-ErrorType"] = error.code
        return response

    # -- the pipeline ----------------------------------------------------------------------
    def _invoke(
        self,
        service: str,
        op_model: OperationModel,
        handler: Callable[[dict[str, Any]], dict[str, Any]] | None,
        parse: Callable[[], dict[str, Any]],
        timestamp_format: str,
        access_key: str | None = None,
    ) -> tuple[int, dict[str, Any] | ApiError]:
        operation = op_model.name
        seq, wall = self.log.ticket()
        arrived: datetime = self.emulator.clock.now()
        params: dict[str, Any] = {}
        injected = False
        try:
            params = parse()
            decision = self.faults.decide(service, operation)
            if decision.latency:
                time.sleep(decision.latency)
            if decision.fails:
                injected = True
                raise injected_error(service, decision)
            if handler is None:
                raise ApiError(
                    "UnknownOperationException",
                    f"{operation} is not emulated by the SageMaker stand-in",
                    400,
                )
            validate_params(params, op_model.input_shape)
            with self.emulator.lock:
                result = handler(params)
                output = serialize_output(result, op_model.output_shape, timestamp_format)
            outcome: tuple[int, dict[str, Any] | ApiError] = (200, output)
        except ApiError as exc:
            outcome = (exc.status, exc)
        except ShapeError as exc:
            log.error("stand-in response does not fit the output shape: %s", exc)
            outcome = (500, ApiError("InternalFailure", f"emulator bug: {exc}", 500))
        except Exception as exc:
            log.exception("stand-in handler %s failed", operation)
            outcome = (500, ApiError("InternalFailure", f"emulator bug: {exc!r}", 500))
        status, payload = outcome
        self.log.record(
            Call(
                seq=seq,
                service=service,
                operation=operation,
                params=params,
                time=arrived,
                wall_time=wall,
                status=status,
                error=payload.code if isinstance(payload, ApiError) else None,
                injected=injected,
                access_key=access_key,
            )
        )
        return outcome


def _json_response(
    status: int, payload: Any, *, content_type: str = "application/json"
) -> Response:
    response = Response(json.dumps(payload), status=status, content_type=content_type)
    response.headers["x-amzn-RequestId"] = str(uuid.uuid4())
    return response


class ControlApi:
    """`/_standins/...`: drive the stand-ins from another process (see `control.Control`)."""

    def __init__(
        self,
        emulator: Emulator,
        faults: Faults,
        log_: RequestLog,
        reset: Callable[[int], None],
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        self.emulator = emulator
        self.faults = faults
        self.log = log_
        self.reset = reset
        self.extra = dict(extra or {})

    def handle(self, request: Request) -> Response:
        route = request.path[len("/_standins") :].strip("/")
        method = request.method
        try:
            body = json.loads(request.get_data() or b"{}")
            if not isinstance(body, dict):
                raise ValueError("body must be a JSON object")
            return _json_response(200, self._route(method, route, body, request))
        except LookupError as exc:
            return _json_response(404, {"message": str(exc)})
        except (ValueError, TypeError) as exc:
            return _json_response(400, {"message": str(exc)})

    def _route(self, method: str, route: str, body: dict[str, Any], request: Request) -> Any:
        clock = self.emulator.clock
        if route == "health":
            return {"ok": True, **self.extra}
        if route == "clock":
            if method == "POST":
                if "advance" in body:
                    clock.advance(float(body["advance"]))
                elif "set" in body:
                    clock.set(datetime.fromisoformat(str(body["set"])))
            return {"now": clock.now().isoformat(), "speed": clock.speed}
        if route == "faults":
            if method == "PUT":
                rules = [FaultRule.from_json(r) for r in body.get("rules", [])]
                self.faults.configure(rules, body.get("seed"))
            elif method == "POST":
                self.faults.add(FaultRule.from_json(body))
            elif method == "DELETE":
                self.faults.clear()
            return self.faults.to_json()
        if route == "log":
            if method == "DELETE":
                self.log.clear()
                return {"calls": []}
            return {"calls": self.log.to_json(request.args.get("service"))}
        if route == "reset" and method == "POST":
            self.reset(int(body.get("seed", 0)))
            return {"ok": True}
        if route == "a2i/loops" and method == "POST":
            loops = self.emulator.a2i.add_loops(
                str(body["flow"]),
                int(body.get("count", 1)),
                status=str(body.get("status", "Completed")),
                interval=float(body.get("interval", 60.0)),
            )
            return {"names": [loop.name for loop in loops]}
        match = re.fullmatch(r"a2i/loops/([^/]+)/complete", route)
        if match and method == "POST":
            uri = self.emulator.a2i.complete_loop(match.group(1), body.get("output"))
            return {"outputS3Uri": uri}
        if route == "sagemaker/metrics" and method == "POST":
            self.emulator.sagemaker.set_metrics(str(body["job"]), body["metrics"])
            return {"ok": True}
        if route == "sagemaker/model-quality" and method in ("PUT", "DELETE"):
            provider = None
            if method == "PUT":
                models = {
                    str(key): ModelQuality.from_json(value)
                    for key, value in dict(body.get("models") or {}).items()
                }
                default = ModelQuality.from_json(body.get("default") or {})
                provider = quality_table(models, default)
            self.emulator.sagemaker.set_model_quality(provider)
            return {"ok": True}
        if route == "sagemaker/model-serving" and method in ("PUT", "DELETE"):
            serving = None
            if method == "PUT":
                table = {
                    str(key): ModelServing.from_json(value)
                    for key, value in dict(body.get("models") or {}).items()
                }
                serving = serving_table(table, ModelServing.from_json(body.get("default") or {}))
            self.emulator.sagemaker.set_model_serving(serving)
            return {"ok": True}
        if route == "sagemaker/traffic" and method == "PUT":
            images = [str(image) for image in body.get("images") or []]
            self.emulator.sagemaker.set_traffic(
                str(body["endpoint"]), int(body["perMinute"]), images
            )
            return {"ok": True}
        if route == "autoscaling/scale" and method == "POST":
            count = self.emulator.sagemaker.autoscale(
                str(body["endpoint"]), str(body["variant"]), int(body["desired"])
            )
            return {"desired": count}
        if route == "sagemaker/plans" and method == "POST":
            fields = {k: v for k, v in body.items() if k != "job"}
            plan = self.emulator.sagemaker.plan_training(str(body["job"]), **fields)
            return {"outcome": plan.outcome}
        if route == "sagemaker/approval" and method == "POST":
            description = body.get("description")
            try:
                self.emulator.sagemaker.set_approval(
                    str(body["arn"]),
                    str(body["status"]),
                    None if description is None else str(description),
                )
            except ApiError as exc:  # no such package
                raise LookupError(exc.message) from exc
            return {"ok": True}
        raise LookupError(f"no control route {method} /_standins/{route}")
