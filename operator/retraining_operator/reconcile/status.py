"""Pure status bookkeeping: phase, conditions (kubebuilder convention) and bounded history."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, NamedTuple

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
    RunStage.SHADOW_TESTING: Phase.DEPLOYING,  # the endpoint carries the shadow variant
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


@dataclass(frozen=True)
class Observation:
    """When a pass looked and which spec generation it saw: every condition it sets carries
    them (lastTransitionTime when the status changes, observedGeneration)."""

    now: datetime
    generation: int | None


def set_condition(
    conditions: Sequence[Condition],
    *,
    type: ConditionType,
    status: bool,
    reason: str,
    message: str,
    observed: Observation,
) -> list[Condition]:
    """Replace one condition; keep lastTransitionTime when the status did not change."""
    wanted = "True" if status else "False"
    out: list[Condition] = []
    replaced = False
    for cond in conditions:
        if cond.type is type:
            since = cond.last_transition_time if cond.status == wanted else observed.now
            out.append(
                Condition(
                    type=type,
                    status=wanted,
                    reason=reason,
                    message=message,
                    last_transition_time=since,
                    observed_generation=observed.generation,
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
                last_transition_time=observed.now,
                observed_generation=observed.generation,
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


class _Wanted(NamedTuple):
    """A condition's status, reason and message, as refresh_conditions derives them."""

    status: bool
    reason: str
    message: str


def refresh_conditions(
    status: RetrainingPolicyStatus,
    *,
    observed: Observation,
    degraded: tuple[str, str] | None,
) -> list[Condition]:
    """Ready/Progressing/Degraded from the phase, the run and an explicit degradation.

    `degraded` is (reason, message) for a problem found in this pass (invalid spec, refused
    role, AWS error); without one, the last finished run decides (a failed or rolled-back
    run keeps Degraded until a later run succeeds).
    """
    phase = status.phase or Phase.COLLECTING
    if degraded is None:
        degraded = _degrading_outcome(status.history)
    conditions = list(status.conditions)
    for type, wanted in (
        (ConditionType.PROGRESSING, _progressing(status, phase)),
        (ConditionType.DEGRADED, _degraded(degraded)),
        (ConditionType.READY, _ready(status, phase, degraded)),
    ):
        conditions = set_condition(
            conditions,
            type=type,
            status=wanted.status,
            reason=wanted.reason,
            message=wanted.message,
            observed=observed,
        )
    return conditions


def _progressing(status: RetrainingPolicyStatus, phase: Phase) -> _Wanted:
    run = status.current_run
    if run is not None:
        stage_msg = run.message or f"run {run.id}: {run.stage.value.lower()}"
        return _Wanted(True, f"Run{run.stage.value}", stage_msg)
    if status.validation_wait is not None and phase is not Phase.SUSPENDED:
        wait = status.validation_wait
        return _Wanted(
            False,
            WAITING_FOR_VALIDATION_DATA,
            f"no run starts: the validation holdout of the {wait.pending_samples} "
            f"pending samples has {wait.holdout_images} distinct image(s), fewer than "
            f"dataset.validation.minSamples {wait.min_samples}; set "
            "dataset.validation.manifestS3Uri or wait for more reviews",
        )
    return _Wanted(
        False,
        "Idle" if phase is not Phase.SUSPENDED else "Suspended",
        "no run in flight"
        + (" (suspended: no new work starts)" if phase is Phase.SUSPENDED else ""),
    )


def _degrading_outcome(history: Sequence[HistoryEntry]) -> tuple[str, str] | None:
    """(reason, message) when the last finished run needs a person's attention."""
    if not history or history[0].outcome not in DEGRADING_OUTCOMES:
        return None
    last = history[0]
    return (last.outcome.value, last.reason or f"run {last.run_id}: {last.outcome}")


def _degraded(degraded: tuple[str, str] | None) -> _Wanted:
    if degraded is not None:
        return _Wanted(True, degraded[0], degraded[1])
    return _Wanted(False, "AsExpected", "no problem found")


def _ready(
    status: RetrainingPolicyStatus, phase: Phase, degraded: tuple[str, str] | None
) -> _Wanted:
    """Ready names the problem itself (the printer column and `kubectl wait` show it), not
    only the phase: a degraded policy reads `False  IngestFailed  Degraded: cannot read...`."""
    if degraded is not None:
        reason, message = degraded
        return _Wanted(False, reason, f"Degraded in phase {phase.value}: {message}")
    if phase is Phase.FAILED:
        return _Wanted(False, "Failed", "the policy cannot run; see Degraded")
    if phase is Phase.SERVING and status.serving is not None:
        return _Wanted(True, phase.value, f"serving model {status.serving.model_name}")
    return _Wanted(True, phase.value, f"phase {phase.value}")


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


def degraded_changed(conditions: Sequence[Condition], reason: str, message: str) -> bool:
    """Whether Degraded with `reason` and `message` is news (announced once, not per pass)."""
    before = get_condition(conditions, ConditionType.DEGRADED)
    return before is None or before.reason != reason or before.message != message
