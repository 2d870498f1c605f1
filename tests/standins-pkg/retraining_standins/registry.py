"""The SageMaker Model Registry: Model Package Groups and versioned Model Packages.

What AWS does, on the emulator's clock:

* CreateModelPackageGroup: `ModelPackageGroupStatus` Pending -> Completed after
  `Durations.registry_group`; a taken name is `ValidationException` "... already exists".
* CreateModelPackage (versioned: `ModelPackageGroupName`): version = 1 + the group's
  versions so far; `ModelPackageStatus` Pending -> InProgress -> Completed over
  `Durations.registry_package`; `ModelApprovalStatus` defaults to PendingManualApproval.
  A repeated `ClientToken` answers the package it already made (idempotency).
* UpdateModelPackage: any approval status to any other (Approved, Rejected,
  PendingManualApproval), with `ApprovalDescription`; `LastModifiedTime` moves.
* Describe* of something missing: `ValidationException` "... does not exist."
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from retraining_standins import errors
from retraining_standins.model import SAGEMAKER, shared_members
from retraining_standins.paging import name_key, paginate, time_key
from retraining_standins.state import EmulatorState

APPROVAL_STATUSES = ("Approved", "Rejected", "PendingManualApproval")


@dataclass
class PackageGroup:
    name: str
    arn: str
    description: str | None
    created: datetime
    versions: int = 0


@dataclass
class ModelPackage:
    group: PackageGroup
    version: int
    arn: str
    request: dict[str, Any]
    created: datetime
    approval: str
    modified: datetime
    approval_description: str | None = None
    updates: list[dict[str, Any]] = field(default_factory=list)


class RegistryStore:
    def __init__(self, state: EmulatorState) -> None:
        self.state = state
        self.groups: dict[str, PackageGroup] = {}
        self.packages: dict[str, ModelPackage] = {}  # by ARN
        self.tokens: dict[str, str] = {}  # ClientToken -> package ARN

    def reset(self) -> None:
        self.groups.clear()
        self.packages.clear()
        self.tokens.clear()

    def arns(self) -> set[str]:
        return {g.arn for g in self.groups.values()} | set(self.packages)

    # -- lookups ---------------------------------------------------------------------------
    def get_group(self, name: str) -> PackageGroup:
        group = self.groups.get(name.rsplit("/", 1)[-1].lower())
        if group is None:
            raise errors.validation(f"ModelPackageGroup {name} does not exist.")
        return group

    def get_package(self, name: str) -> ModelPackage:
        package = self.packages.get(name.lower())
        if package is None:
            raise errors.validation(f"ModelPackage {name} does not exist.")
        return package

    # -- groups ----------------------------------------------------------------------------
    def create_model_package_group(self, params: dict[str, Any]) -> dict[str, Any]:
        name = params["ModelPackageGroupName"]
        arn = self.state.arn("model-package-group", name)
        if name.lower() in self.groups:
            raise errors.validation(f"Model Package Group already exists: {arn}")
        group = PackageGroup(
            name, arn, params.get("ModelPackageGroupDescription"), self.state.clock.now()
        )
        self.groups[name.lower()] = group
        self.state.add_tags(arn, params.get("Tags"))
        return {"ModelPackageGroupArn": arn}

    def describe_model_package_group(self, params: dict[str, Any]) -> dict[str, Any]:
        group = self.get_group(params["ModelPackageGroupName"])
        ready = self.state.clock.now() >= group.created + self._seconds("registry_group")
        out: dict[str, Any] = {
            "ModelPackageGroupName": group.name,
            "ModelPackageGroupArn": group.arn,
            "CreationTime": group.created,
            "CreatedBy": {},
            "ModelPackageGroupStatus": "Completed" if ready else "Pending",
        }
        if group.description is not None:
            out["ModelPackageGroupDescription"] = group.description
        return out

    # -- packages --------------------------------------------------------------------------
    def create_model_package(self, params: dict[str, Any]) -> dict[str, Any]:
        token = params.get("ClientToken")
        if token and token in self.tokens:
            return {"ModelPackageArn": self.tokens[token]}
        group_name = params.get("ModelPackageGroupName")
        if not group_name:
            raise errors.validation(
                "The emulator registers versioned packages only: ModelPackageGroupName is required."
            )
        if params.get("ModelPackageName"):
            raise errors.validation(
                "ModelPackageName and ModelPackageGroupName cannot be specified together."
            )
        group = self.get_group(group_name)
        approval = params.get("ModelApprovalStatus", "PendingManualApproval")
        group.versions += 1
        now = self.state.clock.now()
        arn = f"{self.state.arn('model-package', group.name)}/{group.versions}"
        package = ModelPackage(group, group.versions, arn, dict(params), now, approval, now)
        self.packages[arn.lower()] = package
        if token:
            self.tokens[token] = arn
        self.state.add_tags(arn, params.get("Tags"))
        return {"ModelPackageArn": arn}

    def describe_model_package(self, params: dict[str, Any]) -> dict[str, Any]:
        package = self.get_package(params["ModelPackageName"])
        passthrough = shared_members(
            SAGEMAKER, ("CreateModelPackage", "input"), ("DescribeModelPackage", "output")
        )
        out = {k: v for k, v in package.request.items() if k in passthrough}
        status = self._status(package)
        out.update(
            ModelPackageName=package.group.name,
            ModelPackageGroupName=package.group.name,
            ModelPackageVersion=package.version,
            ModelPackageArn=package.arn,
            CreationTime=package.created,
            LastModifiedTime=package.modified,
            ModelPackageStatus=status,
            ModelPackageStatusDetails={
                "ValidationStatuses": [],
                "ImageScanStatuses": [],
            },
            ModelApprovalStatus=package.approval,
        )
        if package.approval_description is not None:
            out["ApprovalDescription"] = package.approval_description
        return out

    def update_model_package(self, params: dict[str, Any]) -> dict[str, Any]:
        package = self.get_package(params["ModelPackageArn"])
        approval = params.get("ModelApprovalStatus")
        if approval is not None:
            package.approval = approval
        if "ApprovalDescription" in params:
            package.approval_description = params["ApprovalDescription"]
        metadata = params.get("CustomerMetadataProperties")
        if metadata:
            merged = dict(package.request.get("CustomerMetadataProperties") or {})
            merged.update(metadata)
            package.request["CustomerMetadataProperties"] = merged
        package.modified = self.state.clock.now()
        package.updates.append(dict(params))
        return {"ModelPackageArn": package.arn}

    def list_model_packages(self, params: dict[str, Any]) -> dict[str, Any]:
        packages = list(self.packages.values())
        group = params.get("ModelPackageGroupName")
        if group:
            wanted = self.get_group(group)
            packages = [p for p in packages if p.group is wanted]
        if params.get("ModelApprovalStatus"):
            packages = [p for p in packages if p.approval == params["ModelApprovalStatus"]]
        if params.get("NameContains"):
            packages = [p for p in packages if params["NameContains"] in p.group.name]
        after, before = params.get("CreationTimeAfter"), params.get("CreationTimeBefore")
        packages = [
            p
            for p in packages
            if (after is None or p.created > after) and (before is None or p.created < before)
        ]
        by_name = params.get("SortBy") == "Name"
        page, token = paginate(
            packages,
            (lambda p: name_key(f"{p.group.name}/{p.version:09d}"))
            if by_name
            else (lambda p: time_key(p.created, f"{p.version:09d}")),
            descending=params.get("SortOrder", "Ascending") == "Descending",
            max_results=params.get("MaxResults", 10),
            next_token=params.get("NextToken"),
            scope=f"ListModelPackages/{group}",
        )
        summaries = [
            {
                "ModelPackageName": p.group.name,
                "ModelPackageGroupName": p.group.name,
                "ModelPackageVersion": p.version,
                "ModelPackageArn": p.arn,
                "CreationTime": p.created,
                "ModelPackageStatus": self._status(p),
                "ModelApprovalStatus": p.approval,
            }
            for p in page
        ]
        result: dict[str, Any] = {"ModelPackageSummaryList": summaries}
        if token:
            result["NextToken"] = token
        return result

    # -- test controls ---------------------------------------------------------------------
    def set_approval(self, arn: str, status: str, description: str | None = None) -> None:
        if status not in APPROVAL_STATUSES:
            raise ValueError(f"approval status must be one of {APPROVAL_STATUSES}")
        params: dict[str, Any] = {"ModelPackageArn": arn, "ModelApprovalStatus": status}
        if description is not None:
            params["ApprovalDescription"] = description
        self.update_model_package(params)

    def _status(self, package: ModelPackage) -> str:
        elapsed = self.state.clock.now() - package.created
        total = self._seconds("registry_package")
        if elapsed >= total:
            return "Completed"
        return "Pending" if elapsed < total / 2 else "InProgress"

    def _seconds(self, name: str) -> timedelta:
        return timedelta(seconds=float(getattr(self.state.durations, name)))
