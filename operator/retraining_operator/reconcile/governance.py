"""The governance table: every spec field that names an AWS resource or widens cost or exposure,
and the RetrainingTenant allow-list or limit that bounds it (Scoped mode).

One table, two enforcers that cannot disagree:

- the operator checks a spec against it on every pass (`problems`, before any AWS call);
- the chart's ValidatingAdmissionPolicy is generated from it (`cel_validations`, rendered into
  `charts/a2i-retraining-operator/templates/_governance.tpl` by `make admission`; a packaging
  test checks the file is current and, on a real kube-apiserver, that both refuse the same
  field for the same policy, row by row).

A row is default-deny: an empty allow-list allows nothing, and a limit without a value in the
tenant has the default given here. Pure: no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum

from retraining_operator.api import RetrainingPolicySpec, parse_duration
from retraining_operator.tenancy_api import Tenant


class Kind(StrEnum):
    PATTERN = "pattern"  # each value matches a pattern of allow.<key> (`*` any run)
    S3_WRITE = "s3.write"  # under a prefix of allow.s3.write
    S3_READ = "s3.read"  # under a prefix of allow.s3.read or allow.s3.write
    AT_MOST = "at most"  # a number at most limits.<key> (default when unset)
    ALLOWED = "allowed"  # a setting that needs allow.<key>: true


@dataclass(frozen=True)
class Row:
    """One governed field. `path` is the field as users write it (dots; `[]` for each item of
    a list); `values` extracts its value(s) from a parsed spec (empty: not set)."""

    path: str
    kind: Kind
    key: str  # allow.<key>, allow.s3.<...>, or limits.<key>
    values: Callable[[RetrainingPolicySpec], Sequence[str | float]]
    default: float | None = None  # AT_MOST: the limit when the tenant sets none
    why: str = ""

    @property
    def where(self) -> str:
        if self.kind is Kind.AT_MOST:
            return f"limits.{self.key}"
        if self.kind in (Kind.S3_READ, Kind.S3_WRITE):
            return f"allow.{self.kind.value}"
        return f"allow.{self.key}"


def _one(value: str | float | None) -> Sequence[str | float]:
    return () if value is None else (value,)


def instance_hours(spec: RetrainingPolicySpec) -> float:
    """The most instance-hours one run of `spec` may reserve."""
    training = spec.training
    hours = parse_duration(training.max_runtime).total_seconds() / 3600
    jobs = training.tuning.max_jobs if training.tuning is not None else 1
    return training.resources.instance_count * hours * jobs


def _events_queue(spec: RetrainingPolicySpec) -> Sequence[str | float]:
    events = spec.human_loops.events
    return _one(events.sqs_queue_url if events else None)


def _isolation_off(spec: RetrainingPolicySpec) -> Sequence[str | float]:
    return ("false",) if spec.training.enable_network_isolation is False else ()


def _replay(spec: RetrainingPolicySpec) -> Sequence[str | float]:
    replay = spec.dataset.replay
    return _one(replay.manifest_s3_uri if replay else None)


def _group(spec: RetrainingPolicySpec) -> Sequence[str | float]:
    return _one(spec.registry.model_package_group_name if spec.registry else None)


def _vpc(spec: RetrainingPolicySpec, field: str) -> Sequence[str | float]:
    vpc = spec.training.vpc_config
    if vpc is None:
        return ()
    return tuple(vpc.subnets if field == "subnets" else vpc.security_group_ids)


TABLE: tuple[Row, ...] = (
    Row("spec.training.roleArn", Kind.PATTERN, "trainingRoleArns",
        lambda s: _one(s.training.role_arn), why="the role SageMaker jobs run as"),
    Row("spec.humanLoops.flowDefinitionArn", Kind.PATTERN, "flowDefinitionArns",
        lambda s: _one(s.human_loops.flow_definition_arn), why="whose reviews are read"),
    Row("spec.humanLoops.events.sqsQueueUrl", Kind.PATTERN, "sqsQueueUrls", _events_queue,
        why="a queue is shared state: consuming one takes its messages"),
    Row("spec.deployment.endpointName", Kind.PATTERN, "endpointNames",
        lambda s: _one(s.deployment.endpoint_name), why="the endpoint that is rolled"),
    Row("spec.registry.modelPackageGroupName", Kind.PATTERN, "modelPackageGroups", _group,
        why="where candidates are registered (and approved)"),
    Row("spec.training.image", Kind.PATTERN, "images",
        lambda s: _one(s.training.image), why="the code that runs with the training role"),
    Row("spec.training.resources.instanceType", Kind.PATTERN, "instanceTypes",
        lambda s: _one(s.training.resources.instance_type), why="cost"),
    Row("spec.deployment.instanceType", Kind.PATTERN, "instanceTypes",
        lambda s: _one(s.deployment.instance_type), why="cost"),
    Row("spec.deployment.shadow.instanceType", Kind.PATTERN, "instanceTypes",
        lambda s: _one(s.deployment.shadow.instance_type if s.deployment.shadow else None),
        why="cost: the shadow test's fleet"),
    Row("spec.deployment.shadow.roleArn", Kind.PATTERN, "trainingRoleArns",
        lambda s: _one(s.deployment.shadow.role_arn if s.deployment.shadow else None),
        why="the role SageMaker assumes for the shadow test"),
    Row("spec.deployment.autoRollbackAlarms[]", Kind.PATTERN, "alarmNames",
        lambda s: tuple(s.deployment.auto_rollback_alarms), why="another team's alarms"),
    Row("spec.training.vpcConfig.subnets[]", Kind.PATTERN, "subnets",
        lambda s: _vpc(s, "subnets"), why="network exposure"),
    Row("spec.training.vpcConfig.securityGroupIds[]", Kind.PATTERN, "securityGroupIds",
        lambda s: _vpc(s, "securityGroupIds"), why="network exposure"),
    Row("spec.training.outputKmsKeyId", Kind.PATTERN, "kmsKeys",
        lambda s: _one(s.training.output_kms_key_id), why="another team's keys"),
    Row("spec.training.volumeKmsKeyId", Kind.PATTERN, "kmsKeys",
        lambda s: _one(s.training.volume_kms_key_id), why="another team's keys"),
    Row("spec.training.enableNetworkIsolation", Kind.ALLOWED, "disableNetworkIsolation",
        _isolation_off, why="turning network isolation off exposes the model to the network"),
    Row("spec.dataset.outputS3Uri", Kind.S3_WRITE, "write",
        lambda s: _one(s.dataset.output_s3_uri), why="the ledger and manifests"),
    Row("spec.training.outputS3Uri", Kind.S3_WRITE, "write",
        lambda s: _one(s.training.output_s3_uri), why="model artifacts"),
    Row("spec.deployment.shadow.dataCapture.destinationS3Uri", Kind.S3_WRITE, "write",
        lambda s: _one(s.deployment.shadow.data_capture.destination_s3_uri
                       if s.deployment.shadow and s.deployment.shadow.data_capture else None),
        why="the shadow test's captured requests and answers"),
    Row("spec.training.spot.checkpointS3Uri", Kind.S3_WRITE, "write",
        lambda s: _one(s.training.spot.checkpoint_s3_uri), why="checkpoints"),
    Row("spec.dataset.validation.manifestS3Uri", Kind.S3_READ, "read",
        lambda s: _one(s.dataset.validation.manifest_s3_uri), why="data read"),
    Row("spec.dataset.replay.manifestS3Uri", Kind.S3_READ, "read", _replay, why="data read"),
    Row("spec.training.baseModel.s3Uri", Kind.S3_READ, "read",
        lambda s: _one(s.training.base_model.s3_uri), why="a model read"),
    Row("spec.deployment.initialInstanceCount", Kind.AT_MOST, "maxServingInstances",
        lambda s: (s.deployment.initial_instance_count,), default=2, why="cost"),
    Row("spec.deployment.shadow.instanceCount", Kind.AT_MOST, "maxServingInstances",
        lambda s: _one(s.deployment.shadow.instance_count if s.deployment.shadow else None),
        default=2, why="cost: the shadow test's fleet"),
    Row("spec.training (instance-hours)", Kind.AT_MOST, "maxInstanceHours",
        lambda s: (instance_hours(s),), default=48,
        why="cost: instanceCount x maxRuntime (x tuning.maxJobs)"),
    Row("spec.training.tuning.maxParallelJobs", Kind.AT_MOST, "maxParallelJobs",
        lambda s: _one(s.training.tuning.max_parallel_jobs if s.training.tuning else None),
        default=2, why="cost: concurrent jobs of one run"),
)  # fmt: skip


def glob_match(pattern: str, value: str) -> bool:
    """`*` matches any run of characters (also `/` and `:`); everything else matches itself
    (the CEL rules use the same semantics)."""
    parts = pattern.split("*")
    if len(parts) == 1:
        return value == pattern
    if not value.startswith(parts[0]) or not value.endswith(parts[-1]):
        return False
    if len(value) < len(parts[0]) + len(parts[-1]):
        return False
    position = len(parts[0])
    end = len(value) - len(parts[-1])
    for middle in parts[1:-1]:
        found = value.find(middle, position, end)
        if found < 0:
            return False
        position = found + len(middle)
    return True


def _folder(uri: str) -> str:
    return uri if uri.endswith("/") else uri + "/"


def s3_within(uri: str, prefix: str) -> bool:
    """Is `uri` the folder `prefix` or under it? (s3://b/p covers s3://b/p/x, not s3://b/px)"""
    return _folder(uri).startswith(_folder(prefix))


def limit(row: Row, tenant: Tenant) -> float:
    """The tenant's limit for an AT_MOST row (its default when the tenant sets none)."""
    value = getattr(tenant.spec.limits, _snake(row.key), None)
    if value is None:
        assert row.default is not None
        return row.default
    return float(value)


def problem(row: Row, spec: RetrainingPolicySpec, tenant: Tenant) -> str | None:
    """Why `spec` is outside `tenant` on this row (None: within it)."""
    values = row.values(spec)
    if not values:
        return None
    allow = tenant.spec.allow
    if row.kind is Kind.PATTERN:
        patterns: Sequence[str] = getattr(allow, _snake(row.key))
        bad = [str(v) for v in values if not any(glob_match(p, str(v)) for p in patterns)]
        return f"{row.path} {', '.join(bad)} is not in {row.where}" if bad else None
    if row.kind in (Kind.S3_READ, Kind.S3_WRITE):
        prefixes = [*allow.s3.write] + ([*allow.s3.read] if row.kind is Kind.S3_READ else [])
        bad = [str(v) for v in values if not any(s3_within(str(v), p) for p in prefixes)]
        return f"{row.path} {', '.join(bad)} is not under {row.where}" if bad else None
    if row.kind is Kind.ALLOWED:
        allowed = bool(getattr(allow, _snake(row.key)))
        return None if allowed else f"{row.path}: false needs {row.where}: true"
    cap = limit(row, tenant)
    worst = max(float(v) for v in values)
    if worst <= cap + 1e-9:
        return None
    return f"{row.path} is {_number(worst)}, more than {row.where} {_number(cap)}"


def problems(spec: RetrainingPolicySpec, tenant: Tenant) -> list[str]:
    """Every row `spec` is outside of, named (empty: all within)."""
    found = (problem(row, spec, tenant) for row in TABLE)
    return [text for text in found if text is not None]


def _snake(key: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in key)


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:.4g}"


# -- the admission policy, generated ------------------------------------------------------------


def _cel_path(path: str) -> tuple[str, str]:
    """(CEL guard that every optional part of `path` is present, CEL value expression)."""
    parts = path.removesuffix("[]").split(".")[1:]
    guards, expression = [], "variables.spec"
    for part in parts:
        expression = f"{expression}.{part}"
        guards.append(f"has({expression})")
    return " && ".join(guards), expression


def _cel_glob(key: str, value: str) -> str:
    return (
        f"(has(params.spec.allow.{key}) && params.spec.allow.{key}.exists(p, {value}.matches("
        "'^' + p.replace('.', '\\\\.').replace('+', '\\\\+').replace('?', '\\\\?')"
        ".replace('*', '.*') + '$')))"
    )


def _cel_s3(kind: Kind, value: str) -> str:
    lists = ["write"] + (["read"] if kind is Kind.S3_READ else [])
    joined = ", ".join(
        f"(has(params.spec.allow.s3) && has(params.spec.allow.s3.{k}) ? "
        f"params.spec.allow.s3.{k} : [])"
        for k in lists
    )
    folder = f"({value}.endsWith('/') ? {value} : {value} + '/')"
    return f"[{joined}].exists(l, l.exists(p, {folder}.startsWith(p.endsWith('/') ? p : p + '/')))"


@dataclass(frozen=True)
class CelRule:
    expression: str
    message_expression: str


def _cel_rule(row: Row) -> CelRule | None:
    """The CEL validation of one row; None for rows with a hand-written rule."""
    if row.path.startswith("spec.training (instance-hours)"):
        return None
    guard, value = _cel_path(row.path)
    name = " + ' of RetrainingTenant ' + params.metadata.name"
    if row.kind is Kind.PATTERN and row.path.endswith("[]"):
        check = f"{value}.all(v, {_cel_glob(row.key, 'v')})"
        bad = f"{value}.filter(v, !{_cel_glob(row.key, 'v')}).join(', ')"
        message = f"'{row.path} ' + {bad} + ' is not in {row.where}'{name}"
    elif row.kind is Kind.PATTERN:
        check = _cel_glob(row.key, value)
        message = f"'{row.path} ' + {value} + ' is not in {row.where}'{name}"
    elif row.kind in (Kind.S3_READ, Kind.S3_WRITE):
        check = _cel_s3(row.kind, value)
        message = f"'{row.path} ' + {value} + ' is not under {row.where}'{name}"
    elif row.kind is Kind.ALLOWED:
        check = (
            f"{value} != false || (has(params.spec.allow.{row.key}) && params.spec.allow.{row.key})"
        )
        message = f"'{row.path}: false needs {row.where}: true'{name}"
    else:
        cap = (
            f"(has(params.spec.limits) && has(params.spec.limits.{row.key}) ? "
            f"double(params.spec.limits.{row.key}) : {float(row.default or 0)})"
        )
        check = f"double({value}) <= {cap}"
        message = (
            f"'{row.path} is ' + string({value}) + ', more than {row.where} ' + string({cap}){name}"
        )
    return CelRule(f"!variables.covers || !({guard}) || {check}", message)


def cel_validations() -> list[CelRule]:
    """The admission policy's validations for the generated rows, in table order."""
    return [rule for rule in (_cel_rule(row) for row in TABLE) if rule is not None]


def render_template(rules: Iterable[CelRule] | None = None) -> str:
    """`templates/_governance.tpl`: the generated validations as a named Helm template."""
    lines = [
        "{{- /* GENERATED by `make admission` from operator/retraining_operator/reconcile/",
        "governance.py (the governance table): do not edit; tests/packaging checks it. */}}",
        '{{- define "rtp.governance.validations" }}',
    ]
    for rule in rules if rules is not None else cel_validations():
        lines += [
            "- expression: >-",
            f"    {rule.expression}",
            "  messageExpression: >-",
            f"    {rule.message_expression}",
            "  reason: Forbidden",
        ]
    lines.append("{{- end }}")
    return "\n".join(lines) + "\n"


def _check_table() -> None:
    paths = [row.path for row in TABLE]
    if len(paths) != len(set(paths)):
        raise ValueError("a governed field appears twice")
    for row in TABLE:
        if row.kind is Kind.AT_MOST and (row.default is None or not math.isfinite(row.default)):
            raise ValueError(f"{row.path}: a limit needs a finite default")


_check_table()


# -- a first tenant, from a policy ------------------------------------------------------------


def tenant_for_policy(
    spec: RetrainingPolicySpec,
    *,
    name: str,
    namespaces: Sequence[str],
    role_arn: str,
    a2i_output_s3_uri: str | None = None,
) -> dict[str, object]:
    """A RetrainingTenant whose allow-lists and limits admit exactly what `spec` names (the
    rows of the table), for an admin to review and apply: `retraining-operator tenant`."""
    allow: dict[str, object] = {}
    limits: dict[str, object] = {}
    s3: dict[str, list[str]] = {"read": [], "write": []}
    for row in TABLE:
        values = row.values(spec)
        if not values:
            continue
        if row.kind is Kind.PATTERN:
            existing = allow.setdefault(row.key, [])
            assert isinstance(existing, list)
            existing.extend(str(v) for v in values if str(v) not in existing)
        elif row.kind in (Kind.S3_READ, Kind.S3_WRITE):
            target = s3["write" if row.kind is Kind.S3_WRITE else "read"]
            target.extend(str(v) for v in values if str(v) not in target)
        elif row.kind is Kind.ALLOWED:
            allow[row.key] = True
        elif row.default is None or max(float(v) for v in values) > row.default:
            limits[row.key] = math.ceil(max(float(v) for v in values))
    if a2i_output_s3_uri:
        s3["read"].append(a2i_output_s3_uri)
    allow["s3"] = {key: value for key, value in s3.items() if value}
    # Room for two runs of this policy in the default window.
    quota = {"instanceHours": max(96, math.ceil(2 * instance_hours(spec)))}
    return {
        "apiVersion": "retraining.hitl.dev/v1alpha1",
        "kind": "RetrainingTenant",
        "metadata": {"name": name},
        "spec": {
            "namespaces": list(namespaces),
            "aws": {"roleArn": role_arn},
            "allow": allow,
            **({"limits": limits} if limits else {}),
            "quota": quota,
        },
    }
