"""What one rollout pass did and what comes next (`RolloutProgress`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from retraining_operator.api import CurrentRun, HistoryEntry, RunStage, ServingStatus
from retraining_operator.reconcile.rollout.decision import (
    RolloutResult,
    history_entry,
    serving_status,
)


@dataclass(frozen=True)
class RolloutProgress:
    """What one pass did and what comes next.

    * `run`: the run with its new fields (model/config names, step, timestamps, message);
      patch it into `status.currentRun`.
    * `actions`: the AWS changes made in this pass, e.g. `UpdateEndpoint od-endpoint -> ...`
      (post each as an Event).
    * terminal when `result` is set: then `history_entry` goes to the history, and on
      SERVING `serving` replaces `status.serving` (on DEGRADED/FAILED the old model keeps
      serving: leave `status.serving` as it is, set Degraded with `reason`).
    * otherwise `retry_after`: look again after that delay. The step that knows the
      deadline sets it: the poll interval while SageMaker works, and during a variant
      shift's bake the earlier of the next alarm check (the poll interval) and the end
      of the step's bake, so the step is judged when its `interval` is over.
    """

    run: CurrentRun
    message: str
    actions: tuple[str, ...] = ()
    result: RolloutResult | None = None
    reason: str | None = None
    retry_after: timedelta | None = None
    history_entry: HistoryEntry | None = None
    serving: ServingStatus | None = None
    # Set by the pass that took the endpoint (tagged it as this policy's): what it served
    # then. Record it once (`status.preOperator`); `rollback-to: pre-operator` serves it.
    pre_operator: ServingStatus | None = None

    @property
    def done(self) -> bool:
        return self.result is not None


def finished(
    run: CurrentRun,
    result: RolloutResult,
    message: str,
    now: datetime,
    *,
    reason: str | None = None,
    actions: Sequence[str] = (),
) -> RolloutProgress:
    """A terminal progress: the run done, its history entry (and serving status)."""
    text = f"{message}: {reason}" if reason and reason not in message else message
    run = run.model_copy(update={"stage": RunStage.DONE, "message": text})
    return RolloutProgress(
        run=run,
        message=text,
        actions=tuple(actions),
        result=result,
        reason=reason,
        history_entry=history_entry(run, result=result, now=now, reason=reason or message),
        serving=serving_status(run, now=now) if result is RolloutResult.SERVING else None,
    )
