"""A client for the stand-ins' HTTP control API, for processes that do not share their memory
(benchmarks, the demo): `Control(os.environ["STANDINS_CONTROL_URL"])`."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Mapping
from typing import Any

from retraining_standins.faults import FaultRule


class Control:
    def __init__(self, base_url: str, timeout: float = 30.0) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise ValueError(f"not an http(s) URL: {base_url!r}")
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout

    def _call(self, method: str, path: str, body: Mapping[str, Any] | None = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            f"{self.base_url}/{path}",
            data=data,
            method=method,
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=self.timeout) as response:
            return json.loads(response.read() or b"null")

    def health(self) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", "health")
        return result

    def now(self) -> str:
        return str(self._call("GET", "clock")["now"])

    def advance(self, seconds: float) -> str:
        return str(self._call("POST", "clock", {"advance": seconds})["now"])

    def set_faults(self, rules: list[FaultRule], seed: int | None = None) -> None:
        body: dict[str, Any] = {"rules": [r.to_json() for r in rules]}
        if seed is not None:
            body["seed"] = seed
        self._call("PUT", "faults", body)

    def add_fault(self, rule: FaultRule) -> None:
        self._call("POST", "faults", rule.to_json())

    def clear_faults(self) -> None:
        self._call("DELETE", "faults")

    def calls(self, service: str | None = None) -> list[dict[str, Any]]:
        path = "log" + (f"?service={service}" if service else "")
        result: list[dict[str, Any]] = self._call("GET", path)["calls"]
        return result

    def clear_log(self) -> None:
        self._call("DELETE", "log")

    def reset(self, seed: int = 0) -> None:
        self._call("POST", "reset", {"seed": seed})

    def add_loops(
        self, flow: str, count: int, *, status: str = "Completed", interval: float = 60.0
    ) -> list[str]:
        body = {"flow": flow, "count": count, "status": status, "interval": interval}
        return list(self._call("POST", "a2i/loops", body)["names"])

    def complete_loop(self, name: str, output: Any = None) -> str:
        body = {} if output is None else {"output": output}
        return str(self._call("POST", f"a2i/loops/{name}/complete", body)["outputS3Uri"])

    def set_metrics(self, job: str, metrics: Mapping[str, float]) -> None:
        self._call("POST", "sagemaker/metrics", {"job": job, "metrics": dict(metrics)})

    def set_model_quality(
        self,
        models: Mapping[str, Mapping[str, Any]] | None = None,
        default: Mapping[str, Any] | None = None,
    ) -> None:
        """How good each model is in Batch Transform: `models` by ModelDataUrl or ModelName,
        e.g. `{"s3://b/model.tar.gz": {"overall": 0.8, "perClass": {"3": 0.0}}}`; every other
        model `default` (`{"overall": 0.7}` if None). Both None: back to the default."""
        if models is None and default is None:
            self._call("DELETE", "sagemaker/model-quality", {})
            return
        body = {"models": dict(models or {}), "default": dict(default or {})}
        self._call("PUT", "sagemaker/model-quality", body)

    def set_model_serving(
        self,
        models: Mapping[str, Mapping[str, Any]] | None = None,
        default: Mapping[str, Any] | None = None,
    ) -> None:
        """How each model serves in an inference experiment's CloudWatch metrics: `models` by
        ModelDataUrl or ModelName, e.g. `{"candidate": {"p50Ms": 60, "p99Ms": 180,
        "error5xxRate": 0.05}}` (also `error4xxRate`); every other model `default`
        (`ModelServing()` if None). Both None: back to the default."""
        if models is None and default is None:
            self._call("DELETE", "sagemaker/model-serving", {})
            return
        body = {"models": dict(models or {}), "default": dict(default or {})}
        self._call("PUT", "sagemaker/model-serving", body)

    def set_traffic(self, endpoint: str, per_minute: int, images: list[str] | None = None) -> None:
        """Requests a minute users send `endpoint` while an inference experiment runs (and the
        image URIs they send, for data capture)."""
        body = {"endpoint": endpoint, "perMinute": per_minute, "images": list(images or [])}
        self._call("PUT", "sagemaker/traffic", body)

    def plan_training(self, job: str, **plan: Any) -> None:
        self._call("POST", "sagemaker/plans", {"job": job, **plan})

    def set_approval(self, arn: str, status: str, description: str | None = None) -> None:
        """A Model Package's approval, as a person in SageMaker Studio would set it."""
        body: dict[str, Any] = {"arn": arn, "status": status}
        if description is not None:
            body["description"] = description
        self._call("POST", "sagemaker/approval", body)

    def autoscale(self, endpoint: str, variant: str, desired: int) -> int:
        """The autoscaler acting on a registered variant (see `SageMakerControl.autoscale`)."""
        body = {"endpoint": endpoint, "variant": variant, "desired": desired}
        return int(self._call("POST", "autoscaling/scale", body)["desired"])
