"""Deletion: finish or undo what the policy's run left in flight, then let the policy go.

The finalizer reads the object as it is now (a pass may have started a run or submitted a
job after the deletion event), then:

* stops the run's job, named from the run id (`run_jobs`), whether or not the status
  recorded its name yet, and whatever the spec says now (only `aws` and `deployment` must
  still be readable: `cleanup_spec`);
* undoes a variant shift in flight: the new, unjudged model's traffic goes back to the
  old variant and the new variant is removed (`rollout.undo_on_deletion`); a shift
  already judged (its final config asked for) completes on its own. This may take a few
  finalizer calls: each writes the run's progress to the status and asks to be called
  again (`Finalized.done` False);
* releases the endpoint's owner tag, so a policy created again under that name can take
  the endpoint.

Endpoints, Models and configs stay: deleting a policy never takes a model off the air.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, cast

import pydantic

from retraining_operator.api import RetrainingPolicySpec, RetrainingPolicyStatus, RunStage
from retraining_operator.aws.session import AwsSession
from retraining_operator.flows import evaluation, rollout, shadow, training
from retraining_operator.policy_pass.context import Event
from retraining_operator.reconcile.naming import PolicyRef

# The sections of the spec the clean-up acts on: the identity and region, and the endpoint.
CLEANUP_SECTIONS = ("aws", "deployment")


@dataclass
class Finalized:
    """What one finalizer call did: Events, the status to write (a run still being undone),
    and whether the finalizer may be released."""

    events: list[Event] = field(default_factory=list)
    status: RetrainingPolicyStatus | None = None
    done: bool = True


def cleanup_spec(raw: Mapping[str, Any]) -> RetrainingPolicySpec | None:
    """The spec as far as the clean-up needs it: the whole spec when it is valid, else its
    `aws` and `deployment` sections each validated on its own (None if either is not)."""
    try:
        return RetrainingPolicySpec.model_validate(dict(raw))
    except pydantic.ValidationError:
        pass
    sections: dict[str, Any] = {}
    for name in CLEANUP_SECTIONS:
        info = RetrainingPolicySpec.model_fields[name]
        try:
            adapter: pydantic.TypeAdapter[Any] = pydantic.TypeAdapter(cast(Any, info.annotation))
            sections[name] = adapter.validate_python(raw.get(info.alias or name))
        except pydantic.ValidationError:
            return None
    return RetrainingPolicySpec.model_construct(**sections)


def finish_or_undo(
    session: AwsSession,
    ref: PolicyRef,
    spec: RetrainingPolicySpec,
    status: RetrainingPolicyStatus,
    now: datetime,
) -> Finalized:
    """One finalizer call's work (see the module docstring)."""
    out = Finalized()
    run = status.current_run
    if run is not None:
        for job in training.run_jobs(ref, run.id):
            if training.stop_training(session, job):
                out.events.append(
                    Event("Normal", "TrainingStopped", f"stopped {job.kind} {job.name}")
                )
        for name in evaluation.stop_evaluation(session, ref, run.id):
            out.events.append(Event("Normal", "EvaluationStopped", f"stopped {name}"))
        if run.stage is RunStage.SHADOW_TESTING:
            stopped = shadow.stop_shadow(session, ref, run, "the policy was deleted")
            if stopped:
                out.events.append(
                    Event("Normal", "ShadowStopped", f"stopped {stopped} (shadow removed)")
                )
        if run.stage is RunStage.DEPLOYING:
            undone = _undo_rollout(session, ref, spec, status, now)
            if undone is not None:
                out.events.extend(undone.events)
                out.status, out.done = undone.status, undone.done
                if not undone.done:
                    return out
    # Only a policy that rolled (or started rolling) a model can have tagged the endpoint.
    took_endpoint = (
        status.serving is not None
        or status.pre_operator is not None
        or (run is not None and run.stage in (RunStage.DEPLOYING, RunStage.SHADOW_TESTING))
    )
    released = rollout.release_endpoint(session, ref, spec) if took_endpoint else None
    if released:
        out.events.append(Event("Normal", "EndpointReleased", released))
    return out


def _undo_rollout(
    session: AwsSession,
    ref: PolicyRef,
    spec: RetrainingPolicySpec,
    status: RetrainingPolicyStatus,
    now: datetime,
) -> Finalized | None:
    run = status.current_run
    if run is None:
        return None
    subject = rollout.RolloutRun(ref, spec, run, history=status.history)
    progress = rollout.undo_on_deletion(session, subject, now, poll=timedelta(seconds=30))
    if progress is None:
        return None
    events = [Event("Normal", "RolloutStep", action) for action in progress.actions]
    status = status.model_copy(deep=True)
    status.current_run = None if progress.done else progress.run
    if progress.done:
        events.append(Event("Normal", "RolloutUndone", progress.message))
    return Finalized(events=events, status=status, done=progress.done)
