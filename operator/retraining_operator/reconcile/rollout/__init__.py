"""Rolling a trained model out to the SageMaker endpoint, pure: one module per concern.

* `decision.py` — what a step machine answers (one dataclass per kind) and the records
  of a finished rollout; `errors.py` — `RolloutError` and its kinds.
* `endpoint.py` — the endpoint as described now, and `served_model`, the one rule for
  which variant serves the policy's model.
* `requests.py` — the requests every strategy shares; `guardrails.py` — UpdateEndpoint's
  DeploymentConfig; `plan.py` — all requests at once (`plan rollout` CLI).
* `blue_green.py` — blue/green and rolling (`decide_update`); `variant_shift/` — the
  operator-driven canary (`decide_shift`); `rollback.py` — `rollback-to` targets.

Conventions in `CurrentRun` (the CRD's fields, no new ones):

* `model_name`: the Model the run deploys (derived from the run id unless already set,
  e.g. by a manual rollback to an older model).
* `endpoint_config_name`: the config the operator last *asked the endpoint to take*
  (None until the first CreateEndpoint/UpdateEndpoint of the run).
* `deploy_step_started_at`: when that request was made (blue/green), or when the current
  variant-shift step started baking.
* variant shift: `deploy_step` is the step whose weights are applied; once a step fails,
  `endpoint_config_name` names the rollback config and `message` keeps the reason.

The workflow's pass catches the errors and reads the result by these names:
"""

from __future__ import annotations

from retraining_operator.reconcile.rollout.decision import RolloutResult
from retraining_operator.reconcile.rollout.errors import RolloutError, UnknownRollbackTarget

__all__ = ["RolloutError", "RolloutResult", "UnknownRollbackTarget"]
