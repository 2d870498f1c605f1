"""Variant shift: the operator-driven canary between two production variants, pure.

The new model joins the endpoint as a second production variant at the first step's
weight (one UpdateEndpoint to the run's config, `configs.py`); then
`UpdateEndpointWeightsAndCapacities` moves its share through the policy's steps (e.g.
10 -> 50 -> 100 %). Each step bakes for `interval`; during the bake the policy's
CloudWatch alarms are checked on every pass, at its end also the new variant's own
numbers (5XX rate, ModelLatency against the old variant's; `analysis.py`). A failed
check sets the new variant's weight to 0 and removes it (a config without it); the last
step passing removes the old variant. Either removal is an UpdateEndpoint, so both are
guarded like any other: never while the endpoint is busy, never the same config twice.

`steps.decide_shift` is the step machine: a flat list of small cases that each return
early, a function of the endpoint as described now, the run's recorded fields and `now`
(the injectable clock). It answers `Analyse` when a judgement is due; the caller fetches
the numbers, `analysis.analyse_step` turns them into a `StepVerdict`, and `decide_shift`
is asked again with it.
"""

from retraining_operator.reconcile.rollout.strategy import StrategyIam, StrategyRules
from retraining_operator.reconcile.rollout.variant_shift.configs import shift_config_request

# The operator moves the traffic: weights on the endpoint, the new variant's numbers from
# CloudWatch, and the autoscaling registration moved from the old variant to the new one.
RULES = StrategyRules(
    config_request=shift_config_request,
    sagemaker_shifts=False,
    iam=StrategyIam(
        endpoint=("sagemaker:UpdateEndpointWeightsAndCapacities",),
        autoscaling_reads=("application-autoscaling:DescribeScalingPolicies",),
        autoscaling_writes=(
            "application-autoscaling:RegisterScalableTarget",
            "application-autoscaling:PutScalingPolicy",
            "application-autoscaling:DeregisterScalableTarget",
        ),
        metric_reads=("cloudwatch:GetMetricData",),
    ),
)
