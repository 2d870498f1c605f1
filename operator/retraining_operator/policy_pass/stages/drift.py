"""Drift: does the endpoint still serve what status.serving says? (between runs)

Someone (another policy, a person, a pipeline) may change the endpoint out of band. At
most once per `pollInterval` (and never more often than the observe interval), a policy that
serves and has no run in flight describes its endpoint (one call per policy per poll, like
the poll itself: 1,000 serving policies must not spend the AWS budget on DescribeEndpoint)
and sets the `Drifted` condition: True (with what it found) when the live config differs
from `status.serving.endpointConfigName`, False when it matches. The operator does not
fight back: the next run rolls from whatever serves, and the endpoint owner tag stops
another policy of this operator from rolling it.
"""

from __future__ import annotations

from retraining_operator.api import ConditionType
from retraining_operator.aws import endpoints
from retraining_operator.policy_pass.context import PolicyPass
from retraining_operator.reconcile import schedule
from retraining_operator.reconcile import status as st
from retraining_operator.reconcile.rollout.endpoint import EndpointView


def step(p: PolicyPass) -> None:
    serving = p.status.serving
    name = p.spec.deployment.endpoint_name
    if p.run is not None or serving is None or not serving.endpoint_config_name or not name:
        return
    now = p.clock.monotonic()
    last = p.memo.last_drift_check
    interval = schedule.drift_interval(p.spec, p.config.observe_seconds)
    if last is not None and now - last < interval:
        return
    p.memo.last_drift_check = now
    described = endpoints.find_endpoint(p.session.sagemaker(), name)
    expected = serving.endpoint_config_name
    found: str | None
    if described is None:
        found = f"endpoint {name} no longer exists"
    else:
        view = EndpointView.from_describe(described)
        live = {view.config_name, view.pending_config_name} - {None}
        found = (
            None
            if live == {expected}
            else f"endpoint {name} runs {', '.join(sorted(str(c) for c in live))}"
        )
    before = st.get_condition(p.status.conditions, ConditionType.DRIFTED)
    p.status.conditions = st.set_condition(
        p.status.conditions,
        type=ConditionType.DRIFTED,
        status=found is not None,
        reason="EndpointChanged" if found else "AsServed",
        message=(
            f"{found}, not {expected} that this policy rolled: changed out of band"
            if found
            else f"endpoint {name} serves {expected}"
        ),
        observed=st.Observation(p.now, p.view.generation),
    )
    if found and (before is None or before.status != "True"):
        p.event("Warning", "Drifted", f"{found}, not {expected} that this policy rolled")
