"""`kubectl rtp`: the manual actions on a RetrainingPolicy as verbs (a kubectl plugin).

The console script `kubectl-rtp` is on PATH wherever the operator's package is installed, so
kubectl finds it as the plugin `rtp`. Each verb does exactly what its annotation or patch
does (README, "The API"), after checking what it can see first, and prints one line saying
what it changed and what the operator does next:

- `approve [RUN]`: `retraining.hitl.dev/approve: <run awaiting approval>`
- `rollback --to MODEL`: `retraining.hitl.dev/rollback-to: MODEL` (a run id, model name or
  Model Package of the history, or `pre-operator`)
- `retrain`: `retraining.hitl.dev/retrain-now: <when it was asked>`
- `suspend`, `resume`: `spec.suspend` true or false
- `status`, `history`: read only (`status` is `retraining-operator status`)

Exit codes: 0 done, 1 refused or failed (one line on stderr), 2 usage.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from retraining_operator.commands import status as status_command

if TYPE_CHECKING:
    from retraining_operator.api import RetrainingPolicyStatus
    from retraining_operator.commands.cluster import Cluster

PROG = "kubectl rtp"


@dataclass(frozen=True)
class Policy:
    """The policy a verb acts on, as read just before it acts."""

    cluster: Cluster
    namespace: str
    name: str
    obj: dict[str, Any]
    status: RetrainingPolicyStatus

    @property
    def label(self) -> str:
        return f"retrainingpolicy {self.namespace}/{self.name}"

    @property
    def suspended(self) -> bool:
        spec = self.obj.get("spec") or {}
        return spec.get("suspend") is True

    def annotate(self, key: str, value: str) -> None:
        was = ((self.obj.get("metadata") or {}).get("annotations") or {}).get(key)
        self.cluster.annotate(self.namespace, self.name, key, value)
        replaced = f" (was {was})" if was is not None and was != value else ""
        print(f"{self.label} annotated {key}={value}{replaced}")

    def waits_for(self) -> str | None:
        """Why an instruction that starts a run waits, if it does."""
        run = self.status.current_run
        if self.suspended:
            return "spec.suspend is true: it waits until `kubectl rtp resume`"
        if run is not None:
            return f"run {run.id} is in flight (stage {run.stage.value}): it waits until it ends"
        return None


def build_parser() -> argparse.ArgumentParser:
    connection = argparse.ArgumentParser(add_help=False)
    status_command.add_connection_flags(connection, default=argparse.SUPPRESS)
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Act on RetrainingPolicies (retraining.hitl.dev): the manual actions as "
        "verbs, each printing what it changed.",
    )
    status_command.add_connection_flags(parser)
    verbs = parser.add_subparsers(dest="verb", metavar="VERB")

    def verb(name: str, summary: str, run: Callable[[Policy, argparse.Namespace], int]) -> Any:
        sub = verbs.add_parser(name, help=summary, description=summary, parents=[connection])
        sub.add_argument("name", metavar="NAME", help="the RetrainingPolicy")
        sub.set_defaults(act=run)
        return sub

    status = verbs.add_parser(
        "status", help="a policy's story, or one line per policy", parents=[connection],
        description=status_command.DESCRIPTION,
    )  # fmt: skip
    status_command.add_status_flags(status)
    status.set_defaults(act=None)
    verb("history", "the runs of a policy, newest first, with the gate metric", _history)
    approve = verb(
        "approve", "approve the run awaiting approval (registry.approval: Manual)", _approve
    )
    approve.add_argument("run", metavar="RUN", nargs="?", help="its run id (checked if given)")
    rollback = verb("rollback", "serve a model from the history again", _rollback)
    rollback.add_argument(
        "--to", required=True, metavar="MODEL",
        help="a run id, model name or Model Package (ARN, version) from the history, or "
        "pre-operator",
    )  # fmt: skip
    verb("retrain", "start a run now with the pending samples", _retrain)
    verb("suspend", "set spec.suspend: no new polls or runs", _suspend)
    verb("resume", "clear spec.suspend: polls and runs start again", _resume)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from retraining_operator.commands.cluster import Cluster, exit_code

    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as done:  # --help (0) or a usage error (2), already printed
        return done.code if isinstance(done.code, int) else 2
    if args.verb is None:
        parser.print_help(sys.stderr)
        return 2

    def work() -> int:
        cluster = Cluster.connect(args.kubeconfig, args.context)
        if args.act is None:
            return status_command.show(cluster, args)
        act: Callable[[Policy, argparse.Namespace], int] = args.act
        return act(_read(cluster, args.namespace or cluster.namespace, args.name), args)

    return exit_code(work)


def _read(cluster: Cluster, namespace: str, name: str) -> Policy:
    from pydantic import ValidationError

    from retraining_operator.api import RetrainingPolicyStatus
    from retraining_operator.commands.cluster import ClusterError

    obj = cluster.policy(namespace, name)
    try:
        status = RetrainingPolicyStatus.model_validate(obj.get("status") or {})
    except ValidationError as error:
        raise ClusterError(
            f"retrainingpolicy {namespace}/{name}: its status is unreadable "
            f"({error.error_count()} problem(s)); see `kubectl get rtp {name} -o yaml`"
        ) from error
    return Policy(cluster, namespace, name, obj, status)


def _history(policy: Policy, args: argparse.Namespace) -> int:
    from retraining_operator.commands.status_view import gate_metric, history_lines

    run = policy.status.current_run
    serving = policy.status.serving
    print(f"RetrainingPolicy {policy.namespace}/{policy.name}")
    print(f"Serving:     {(serving.model_name if serving else None) or 'nothing yet'}")
    if run is not None:
        print(f"In flight:   run {run.id}, stage {run.stage.value}")
    print("\n".join(history_lines(policy.status, gate_metric(policy.obj), wide=True)[1:]))
    return 0


def _approve(policy: Policy, args: argparse.Namespace) -> int:
    from retraining_operator.api import APPROVE_ANNOTATION, RunStage
    from retraining_operator.commands.cluster import ClusterError

    run = policy.status.current_run
    if run is None or run.stage is not RunStage.AWAITING_APPROVAL:
        now = "no run is in flight" if run is None else f"run {run.id} is in stage {run.stage}"
        raise ClusterError(f"nothing awaits approval on {policy.label}: {now}")
    if args.run is not None and args.run != run.id:
        raise ClusterError(
            f"run {args.run} does not await approval on {policy.label}: run {run.id} does"
        )
    policy.annotate(APPROVE_ANNOTATION, run.id)
    package = run.model_package_arn or "its Model Package"
    print(
        f"  next: the operator sets {package} to Approved, then rolls run {run.id}'s model out; "
        "it clears the annotation when taken"
    )
    return 0


def _rollback(policy: Policy, args: argparse.Namespace) -> int:
    from retraining_operator.api import ROLLBACK_TO_ANNOTATION
    from retraining_operator.commands.cluster import ClusterError
    from retraining_operator.reconcile.rollout import UnknownRollbackTarget
    from retraining_operator.reconcile.rollout.rollback import (
        resolve_rollback_target,
        rollback_candidates,
    )

    target = args.to.strip()
    candidates = rollback_candidates(policy.status.history, policy.status.pre_operator)
    try:
        entry = resolve_rollback_target(candidates, target)
    except UnknownRollbackTarget as error:
        raise ClusterError(f"{policy.label}: {error}") from error
    policy.annotate(ROLLBACK_TO_ANNOTATION, target)
    print(
        f"  next: the operator serves {entry.model_name} (run {entry.run_id}) again with the "
        "policy's strategy and guardrails, then clears the annotation"
    )
    waits = policy.waits_for()
    if waits is not None:
        print(f"  {waits}")
    return 0


def _retrain(policy: Policy, args: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    from retraining_operator.api import RETRAIN_NOW_ANNOTATION

    asked = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    policy.annotate(RETRAIN_NOW_ANNOTATION, asked)
    pending = policy.status.ingest.pending_samples
    print(
        f"  next: the operator starts a run with the pending samples ({pending} now) and "
        "clears the annotation; with none at its next poll it refuses (Event "
        "RetrainNowIgnored)"
    )
    waits = policy.waits_for()
    if waits is not None:
        print(f"  {waits}")
    return 0


def _suspend(policy: Policy, args: argparse.Namespace) -> int:
    from retraining_operator.api import RunStage

    if not _set_suspend(policy, True):
        return 0
    run = policy.status.current_run
    stopped = {
        RunStage.TRAINING: "training job",
        RunStage.EVALUATING: "held-out evaluation (its transform jobs)",
    }
    also = ""
    if run is not None and run.stage in stopped:
        also = f"; it stops run {run.id}'s {stopped[run.stage]}"
    print(f"  next: the operator starts no new polls or runs{also}; a rollout under way finishes")
    return 0


def _resume(policy: Policy, args: argparse.Namespace) -> int:
    if _set_suspend(policy, False):
        print("  next: the operator polls for reviews and starts runs again at its next pass")
    return 0


def _set_suspend(policy: Policy, suspend: bool) -> bool:
    """Patch `spec.suspend`; False (and a line saying so) when it already says that."""
    value = "true" if suspend else "false"
    if policy.suspended == suspend:
        print(f"{policy.label} unchanged: spec.suspend is already {value}")
        return False
    policy.cluster.patch_spec(policy.namespace, policy.name, {"suspend": suspend})
    print(f"{policy.label} patched spec.suspend={value}")
    return True


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
