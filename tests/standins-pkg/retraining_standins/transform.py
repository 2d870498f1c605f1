"""Batch Transform jobs, on the emulator's clock, answering as the built-in object detector.

A job is InProgress for `Durations.transform` seconds after it is created, then Completed
(every input object answered) or Failed (the manifest, an input object or the output
bucket is missing; no outputs then). StopTransformJob: Stopping, then Stopped after
`Durations.transform_stopping` (no outputs). As for training, transitions are applied
lazily whenever a job is observed, so the answer depends on the clock only.

Inputs, as SageMaker reads them (`TransformInput.DataSource.S3DataSource`):

* `S3Prefix`: every object whose key starts with the URI's key;
* `ManifestFile`: a JSON list, `[{"prefix": "s3://bucket/some/prefix/"}, "relative/key1.jpg",
  ...]`, each object being the prefix followed by its relative key.

For each input `<prefix><relative path>` the job writes `<S3OutputPath>/<relative path>.out`
(a leading `/` of the relative path dropped): the model's answer for that image
(`detector.predict`, the model being the job's `ModelName` and its `ModelDataUrl` when the
job was created).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from botocore.exceptions import ClientError

from retraining_standins import errors
from retraining_standins.backends import parse_s3_uri
from retraining_standins.detector import QualityProvider, default_quality, predict
from retraining_standins.hosting import HostingStore
from retraining_standins.images import truth_of
from retraining_standins.model import SAGEMAKER, shared_members
from retraining_standins.paging import filter_common, paginate, sort_key, with_token
from retraining_standins.state import EmulatorState

EMULATED_DATA_TYPES = ("S3Prefix", "ManifestFile")


@dataclass
class TransformJob:
    name: str
    arn: str
    request: dict[str, Any]
    created: datetime
    seconds: float
    model_data_url: str
    status: str = "InProgress"
    end_time: datetime | None = None
    failure_reason: str | None = None
    stop_requested: datetime | None = None
    stopping_seconds: float = 0.0
    last_modified: datetime = field(init=False)

    def __post_init__(self) -> None:
        self.last_modified = self.created

    @property
    def model_name(self) -> str:
        return str(self.request["ModelName"])

    @property
    def source(self) -> dict[str, Any]:
        source: dict[str, Any] = self.request["TransformInput"]["DataSource"]["S3DataSource"]
        return source

    @property
    def output_path(self) -> str:
        return str(self.request["TransformOutput"]["S3OutputPath"]).rstrip("/")

    def refresh(self, now: datetime, run: Callable[[TransformJob], str | None]) -> None:
        if self.status == "Stopping":
            assert self.stop_requested is not None
            done = self.stop_requested + timedelta(seconds=self.stopping_seconds)
            if done <= now:
                self._end("Stopped", done)
            return
        if self.status != "InProgress":
            return
        done = self.created + timedelta(seconds=self.seconds)
        if done > now:
            return
        problem = run(self)
        if problem:
            self.failure_reason = problem
            self._end("Failed", done)
        else:
            self._end("Completed", done)

    def _end(self, status: str, at: datetime) -> None:
        self.status = status
        self.end_time = at
        self.last_modified = at

    def stop(self, now: datetime, seconds: float) -> None:
        self.status = "Stopping"
        self.stop_requested = now
        self.stopping_seconds = seconds
        self.last_modified = now

    def describe(self) -> dict[str, Any]:
        passthrough = shared_members(
            SAGEMAKER, ("CreateTransformJob", "input"), ("DescribeTransformJob", "output")
        )
        out: dict[str, Any] = {k: v for k, v in self.request.items() if k in passthrough}
        out.update(
            TransformJobName=self.name,
            TransformJobArn=self.arn,
            TransformJobStatus=self.status,
            CreationTime=self.created,
            TransformStartTime=self.created,
        )
        if self.end_time is not None:
            out["TransformEndTime"] = self.end_time
        if self.failure_reason:
            out["FailureReason"] = self.failure_reason
        return out

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "TransformJobName": self.name,
            "TransformJobArn": self.arn,
            "CreationTime": self.created,
            "LastModifiedTime": self.last_modified,
            "TransformJobStatus": self.status,
        }
        if self.end_time is not None:
            out["TransformEndTime"] = self.end_time
        if self.failure_reason:
            out["FailureReason"] = self.failure_reason
        return out


class TransformStore:
    """Transform jobs plus the test's knob for how good each model is."""

    def __init__(self, state: EmulatorState, hosting: HostingStore) -> None:
        self.state = state
        self.hosting = hosting
        self.jobs: dict[str, TransformJob] = {}
        self.quality: QualityProvider = default_quality

    def reset(self) -> None:
        self.jobs.clear()
        self.quality = default_quality

    def arns(self) -> set[str]:
        return {j.arn for j in self.jobs.values()}

    def get_job(self, name: str) -> TransformJob:
        job = self.jobs.get(name.lower())
        if job is None:
            raise errors.validation(f"Could not find requested job with name {name}")
        job.refresh(self.state.clock.now(), self.run)
        return job

    # -- the API ---------------------------------------------------------------------------
    def create_transform_job(self, params: dict[str, Any]) -> dict[str, Any]:
        name = params["TransformJobName"]
        arn = self.state.arn("transform-job", name)
        if name.lower() in self.jobs:
            raise errors.resource_in_use(
                "Job name must be unique within an AWS account and region, and a job with "
                f"this name already exists ({arn})"
            )
        model = self.hosting.get_model(params["ModelName"])  # "Could not find model ..."
        source = params["TransformInput"]["DataSource"]["S3DataSource"]
        if source["S3DataType"] not in EMULATED_DATA_TYPES:
            raise errors.validation(
                f"S3DataType {source['S3DataType']} is not emulated by the SageMaker stand-in "
                f"(only {', '.join(EMULATED_DATA_TYPES)})."
            )
        for uri in (source["S3Uri"], params["TransformOutput"]["S3OutputPath"]):
            if not str(uri).startswith("s3://"):
                raise errors.validation(f"{uri} is not an s3:// URI.")
        containers = model.containers
        data_url = str(containers[0].get("ModelDataUrl", "")) if containers else ""
        job = TransformJob(
            name=name,
            arn=arn,
            request=dict(params),
            created=self.state.clock.now(),
            seconds=self.state.durations.transform,
            model_data_url=data_url,
        )
        self.jobs[name.lower()] = job
        self.state.add_tags(arn, params.get("Tags"))
        return {"TransformJobArn": arn}

    def describe_transform_job(self, params: dict[str, Any]) -> dict[str, Any]:
        return self.get_job(params["TransformJobName"]).describe()

    def stop_transform_job(self, params: dict[str, Any]) -> dict[str, Any]:
        job = self.get_job(params["TransformJobName"])
        if job.status != "InProgress":
            raise errors.validation(
                f"The request was rejected because the transform job is in status {job.status}."
            )
        job.stop(self.state.clock.now(), self.state.durations.transform_stopping)
        job.refresh(self.state.clock.now(), self.run)
        return {}

    def list_transform_jobs(self, params: dict[str, Any]) -> dict[str, Any]:
        now = self.state.clock.now()
        for job in self.jobs.values():
            job.refresh(now, self.run)
        jobs = filter_common(list(self.jobs.values()), params, lambda j: j.created)
        if "LastModifiedTimeAfter" in params:
            jobs = [j for j in jobs if j.last_modified > params["LastModifiedTimeAfter"]]
        if "LastModifiedTimeBefore" in params:
            jobs = [j for j in jobs if j.last_modified < params["LastModifiedTimeBefore"]]
        if "StatusEquals" in params:
            jobs = [j for j in jobs if j.status == params["StatusEquals"]]
        sort_by = params.get("SortBy", "CreationTime")
        key = sort_key(sort_by, lambda j: j.name, lambda j: j.created, lambda j: j.status)
        page, token = paginate(
            jobs,
            key,
            descending=params.get("SortOrder", "Descending") == "Descending",
            max_results=params.get("MaxResults", 10),
            next_token=params.get("NextToken"),
            scope=f"ListTransformJobs/{sort_by}",
        )
        return with_token({"TransformJobSummaries": [j.summary() for j in page]}, token)

    # -- running a job ---------------------------------------------------------------------
    def run(self, job: TransformJob) -> str | None:
        """Answer every input of `job` into S3; a failure reason if that is impossible."""
        store = self.state.store
        if store is None:
            return None
        inputs = self._inputs(job)
        if isinstance(inputs, str):
            return inputs
        found: list[tuple[str, str, bytes]] = []
        for uri, relative in inputs:
            data = store.get(uri)
            if data is None:
                return f"ClientError: Failed to download data. Object {uri} does not exist."
            found.append((uri, relative, data))
        quality = self.quality(job.model_name, job.model_data_url)
        for uri, relative, data in found:
            rows = predict(truth_of(data), quality, model=job.model_data_url, image=uri)
            body = json.dumps({"prediction": rows}, separators=(",", ":")).encode()
            target = f"{job.output_path}/{relative}.out"
            try:
                store.put(target, body, "application/json")
            except ClientError as exc:  # e.g. the output bucket does not exist, as on AWS
                code = exc.response.get("Error", {}).get("Code", "Error")
                return f"ClientError: Failed to upload {target}: {code}"
        return None

    def _inputs(self, job: TransformJob) -> list[tuple[str, str]] | str:
        """`(object URI, path relative to the prefix)` of every input, or why there are none."""
        store = self.state.store
        assert store is not None
        uri = str(job.source["S3Uri"])
        if job.source["S3DataType"] == "S3Prefix":
            bucket, key = parse_s3_uri(uri)
            found = store.list_keys(uri)
            if not found:
                return f"ClientError: No objects found under the S3 prefix {uri}."
            return [(f"s3://{bucket}/{k}", k[len(key) :].lstrip("/")) for k in found]
        body = store.get(uri)
        if body is None:
            return f"ClientError: Failed to download the manifest file {uri}: it does not exist."
        try:
            manifest: Any = json.loads(body)
            prefix = str(manifest[0]["prefix"])
            relatives = [str(entry) for entry in manifest[1:] if isinstance(entry, str)]
            if len(relatives) != len(manifest) - 1 or not prefix.startswith("s3://"):
                raise ValueError("entries after the prefix must be relative keys")
        except (ValueError, KeyError, TypeError, IndexError) as exc:
            return f"ClientError: The manifest file {uri} is not valid: {exc}"
        if not relatives:
            return f"ClientError: The manifest file {uri} lists no objects."
        return [(prefix + relative, relative.lstrip("/")) for relative in relatives]
