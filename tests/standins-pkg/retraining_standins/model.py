"""botocore's service models, loaded once per process."""

from __future__ import annotations

import functools

import botocore.session
from botocore.model import OperationModel, ServiceModel, Shape

SAGEMAKER = "sagemaker"
A2I_RUNTIME = "sagemaker-a2i-runtime"
AUTOSCALING = "application-autoscaling"


@functools.cache
def service_model(name: str) -> ServiceModel:
    return botocore.session.get_session().get_service_model(name)


@functools.cache
def operation_model(service: str, operation: str) -> OperationModel:
    return service_model(service).operation_model(operation)


@functools.cache
def shared_members(
    service: str, source: tuple[str, str], target: tuple[str, str]
) -> frozenset[str]:
    """Members of `source` (op, "input"|"output" or a shape name) that `target` has with the
    very same shape, so a value accepted by one can be returned by the other unchanged."""
    model = service_model(service)

    def members(spec: tuple[str, str]) -> dict[str, str]:
        name, kind = spec
        shape: Shape | None
        if kind == "shape":
            shape = model.shape_for(name)
        else:
            op = model.operation_model(name)
            shape = op.input_shape if kind == "input" else op.output_shape
        if shape is None:
            return {}
        return {k: v.name for k, v in getattr(shape, "members", {}).items()}

    left, right = members(source), members(target)
    return frozenset(k for k, shape_name in left.items() if right.get(k) == shape_name)
