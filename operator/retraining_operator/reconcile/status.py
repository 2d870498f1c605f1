"""Pure status bookkeeping: phase, conditions (kubebuilder convention) and bounded history."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from retraining_operator.api import (
    HISTORY_LIMIT,
    Condition,
    ConditionType,
    CurrentRun,
    HistoryEntry,
    IngestStatus,
    Outcome,
    Phase,
    RetrainingPolicyStatus,
    RunStage,
)

_STAGE_PHASE = {
    RunStage.PREPARING: Phase.TRAINING,
    RunStage.TRAINING: Phase.TRAINING,
    RunStage.EVALUATING: Phase.EVALUATING,
    RunStage.AWAITING_APPROVAL: Phase.EVALUATING,  # the stage (printer column) says why
    RunStage.DEPLOYING: Phase.DEPLOYING,
    RunStage.DONE: Phase.SERVING,
}

# Progressing=False reason while the holdout is too small to validate on (no run starts).
WAITING_FOR_VALIDATION_DATA = "WaitingForValidationData"
# An idle poll changes nothing but lastPollTime; writing that every poll would cost an etcd
# write and a watch event to every watcher per policy per pollInterval. It is written when
# the ingest block changes anyway, else once it is this old (the stored watermark moves every
# 6 hours, reconcile/ingest.py WATERMARK_PERSIST_STEP): an idle policy's status is written about
# once an hour. Scheduling does not depend on it: the pass remembers its last poll in memory.
LAST_POLL_TIME_REFRESH = timedelta(hours=1)

# Outcomes that mean the policy needs a person's attention.
DEGRADING_OUTCOMES = frozenset({Outcome.TRAINING_FAILED, Outcome.ROLLED_BACK, Outcome.FAILED})


def derive_phase(
    *, suspended: bool, spec_error: bool, current_run: CurrentRun | None, serving: bool
) -> Phase:
    if spec_error:
        return Phase.FAILED
    if current_run is not None:
        return _STAGE_PHASE[current_run.stage]
    if suspended:
        return Phase.SUSPENDED
    return Phase.SERVING if serving else Phase.COLLECTING


def set_condition(
    conditions: Sequence[Condition],
    *,
    type: ConditionType,
    status: bool,
    reason: str,
    message: str,
    now: datetime,
    generation: int | None,
) -> list[Condition]:
    """Replace one condition; keep lastTransitionTime when the status did not change."""
    wanted = "True" if status else "False"
    out: list[Condition] = []
    replaced = False
    for cond in conditions:
        if cond.type is type:
            since = cond.last_transition_time if cond.status == wanted else now
            out.append(
                Condition(
                    type=type,
                    status=wanted,
                    reason=reason,
                    message=message,
                    last_transition_time=since,
                    observed_generation=generation,
                )
            )
            replaced = True
        else:
            out.append(cond)
    if not replaced:
        out.append(
            Condition(
                type=type,
                status=wanted,
                reason=reason,
                message=message,
                last_transition_time=now,
                observed_generation=generation,
            )
        )
    order = list(ConditionType)
    return sorted(out, key=lambda c: order.index(c.type))


def get_condition(conditions: Sequence[Condition], type: ConditionType) -> Condition | None:
    return next((c for c in conditions if c.type is type), None)


def push_history(history: Sequence[HistoryEntry], entry: HistoryEntry) -> list[HistoryEntry]:
    """Newest first, at most HISTORY_LIMIT; a run id already recorded is replaced, not doubled."""
    rest = [h for h in history if h.run_id != entry.run_id]
    return [entry, *rest][:HISTORY_LIMIT]


def refresh_conditions(
    status: RetrainingPolicyStatus,
    *,
    now: datetime,
    generation: int | None,
    degraded: tuple[str, str] | None,
) -> list[Condition]:
    """Ready/Progressing/Degraded from the phase, the run and an explicit degradation.

    `degraded` is (reason, message) for a problem found in this pass (invalid spec, refused
    role, AWS error); without one, the last finished run decides (a failed or rolled-back
    run keeps Degraded until a later run succeeds).
    """
    conditions = list(status.conditions)
    run = status.current_run
    phase = status.phase or Phase.COLLECTING

    if run is not None:
        stage_msg = run.message or f"run {run.id}: {run.stage.value.lower()}"
        conditions = set_condition(
            conditions,
            type=ConditionType.PROGRESSING,
            status=True,
            reason=f"Run{run.stage.value}",
            message=stage_msg,
            now=now,
            generation=generation,
        )
    elif status.validation_wait is not None and phase is not Phase.SUSPENDED:
        wait = status.validation_wait
        conditions = set_condition(
            conditions,
            type=ConditionType.PROGRESSING,
            status=False,
            reason=WAITING_FOR_VALIDATION_DATA,
            message=f"no run starts: the validation holdout of the {wait.pending_samples} "
            f"pending samples has {wait.holdout_images} distinct image(s), fewer than "
            f"dataset.validation.minSamples {wait.min_samples}; set "
            "dataset.validation.manifestS3Uri or wait for more reviews",
            now=now,
            generation=generation,
        )
    else:
        conditions = set_condition(
            conditions,
            type=ConditionType.PROGRESSING,
            status=False,
            reason="Idle" if phase is not Phase.SUSPENDED else "Suspended",
            message="no run in flight"
            + (" (suspended: no new work starts)" if phase is Phase.SUSPENDED else ""),
            now=now,
            generation=generation,
        )

    if degraded is None and status.history:
        last = status.history[0]
        if last.outcome in DEGRADING_OUTCOMES:
            degraded = (last.outcome.value, last.reason or f"run {last.run_id}: {last.outcome}")
    if degraded is not None:
        conditions = set_condition(
            conditions,
            type=ConditionType.DEGRADED,
            status=True,
            reason=degraded[0],
            message=degraded[1],
            now=now,
            generation=generation,
        )
    else:
        conditions = set_condition(
            conditions,
            type=ConditionType.DEGRADED,
            status=False,
            reason="AsExpected",
            message="no problem found",
            now=now,
            generation=generation,
        )

    ready = phase not in (Phase.FAILED,) and degraded is None
    if phase is Phase.SERVING and status.serving is not None:
        ready_msg = f"serving model {status.serving.model_name}"
    elif phase is Phase.FAILED:
        ready_msg = "the policy cannot run; see Degraded"
    else:
        ready_msg = f"phase {phase.value}"
    conditions = set_condition(
        conditions,
        type=ConditionType.READY,
        status=ready,
        reason=phase.value if ready else "NotReady",
        message=ready_msg,
        now=now,
        generation=generation,
    )
    return conditions


def quiet_ingest_status(
    stored: IngestStatus, polled: IngestStatus, *, refresh: timedelta = LAST_POLL_TIME_REFRESH
) -> IngestStatus:
    """The ingest block to store after a poll: `polled`, except that a poll which moved
    nothing else keeps the stored lastPollTime until that is `refresh` old (no status write)."""
    kept, new = stored.last_poll_time, polled.last_poll_time
    if kept is None or new is None or new - kept >= refresh:
        return polled
    # Compared as written (timestamps to the second): the ledger's watermark carries
    # microseconds that the stored status does not.
    unchanged = polled.model_copy(update={"last_poll_time": kept}).model_dump(mode="json")
    if unchanged != stored.model_dump(mode="json"):
        return polled
    return stored


def merge_patch_body(status: RetrainingPolicyStatus) -> dict[str, Any]:
    """The status as a JSON merge patch that replaces what is stored.

    Fields that are unset become explicit nulls (merge patch deletes them, e.g. a finished
    `currentRun`), except inside lists: lists are replaced whole, and a null inside a list
    item would be stored and fail the schema.
    """

    def clean(value: Any, in_list: bool) -> Any:
        if isinstance(value, dict):
            return {k: clean(v, in_list) for k, v in value.items() if not (v is None and in_list)}
        if isinstance(value, list):
            return [clean(v, True) for v in value]
        return value

    body: dict[str, Any] = clean(status.model_dump(mode="json", by_alias=True), False)
    return body
