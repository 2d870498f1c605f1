"""`retraining-operator status [NAME]` (and `kubectl rtp status`): policies read like kubectl.

With NAME, the story of one policy: phase, conditions, the current run's stage, the history
with the gate metric per run and its sparkline, the last Events. Without, one line per
policy of the namespace (`-A`: of all). `--wide` shows every message in full and more
columns; `-w` prints again whenever a policy changes (a watch on the API server) until
Ctrl-C. Reads through the command line's gateway (`commands/cluster.py`); what is printed
is built by `status_view`, which is pure.
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from retraining_operator.commands import Subparsers

if TYPE_CHECKING:
    from retraining_operator.commands.cluster import Cluster

DESCRIPTION = (
    "Show a RetrainingPolicy as a person reads it: phase, conditions (messages in full), the "
    "current run's stage, the run history with the gate metric per run and its trend, and "
    "the last Events. Without NAME, one line per policy. Reads the Kubernetes API like "
    "kubectl (--kubeconfig, KUBECONFIG, or in-cluster credentials)."
)


def register(sub: Subparsers) -> None:
    status = sub.add_parser(
        "status",
        help="show a policy's phase, conditions, current run, run history and Events",
        description=DESCRIPTION,
    )
    add_connection_flags(status)
    add_status_flags(status)
    status.set_defaults(handler=_status)


def add_connection_flags(parser: argparse.ArgumentParser, default: Any = None) -> None:
    """kubectl's own flags, with kubectl's meaning. A verb's parser passes
    `argparse.SUPPRESS`, so a flag given before the verb is not reset by it."""
    parser.add_argument(
        "-n",
        "--namespace",
        default=default,
        help="namespace (default: the context's, else default)",
    )
    parser.add_argument(
        "--kubeconfig", default=default, help="kubeconfig file (default: KUBECONFIG)"
    )
    parser.add_argument("--context", default=default, help="kubeconfig context")


def add_status_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "name", metavar="NAME", nargs="?", help="the RetrainingPolicy (default: list them all)"
    )
    parser.add_argument(
        "-A",
        "--all-namespaces",
        action="store_true",
        help="list the policies of every namespace (without NAME)",
    )
    parser.add_argument(
        "--wide",
        action="store_true",
        help="every message in full; the list adds Ready's reason, the serving model, the last "
        "run and its outcome, and the message",
    )
    parser.add_argument(
        "-w",
        "--watch",
        action="store_true",
        help="print again whenever the policy (or, without NAME, any policy) changes; Ctrl-C ends",
    )
    parser.add_argument(
        "--events", type=int, default=10, metavar="N", help="Events to show (default 10)"
    )


def _status(args: argparse.Namespace) -> int:
    from retraining_operator.commands.cluster import Cluster, exit_code

    def work() -> int:
        return show(Cluster.connect(args.kubeconfig, args.context), args)

    return exit_code(work)


def show(cluster: Cluster, args: argparse.Namespace) -> int:
    """Print what the flags ask for; raises `ClusterError` on failure."""
    from retraining_operator.commands.cluster import ClusterError

    if args.name is not None and args.all_namespaces:
        raise ClusterError("a NAME is looked up in one namespace: drop -A or the NAME")
    namespace = args.namespace or cluster.namespace
    if args.name is None:
        listed = None if args.all_namespaces else namespace
        return _watch_list(cluster, args, listed) if args.watch else _list(cluster, args, listed)
    if args.watch:
        return _watch_story(cluster, args, namespace)
    _story(cluster, args, cluster.policy(namespace, args.name))
    return 0


def _story(cluster: Cluster, args: argparse.Namespace, obj: dict[str, Any]) -> None:
    from retraining_operator.commands.status_view import render

    meta = obj.get("metadata") or {}
    events = cluster.events(meta.get("namespace") or "", meta.get("name") or "")
    now = datetime.now(UTC)
    text = render(obj, events, now=now, max_events=max(0, args.events), wide=args.wide)
    sys.stdout.write(text)
    sys.stdout.flush()


def _watch_story(cluster: Cluster, args: argparse.Namespace, namespace: str) -> int:
    cluster.policy(namespace, args.name)  # not found: say so, as without -w
    shown: str | None = None
    for batch in cluster.watch(namespace, args.name):
        for obj in batch:
            meta = obj.get("metadata") or {}
            if meta.get("resourceVersion") == shown:
                continue  # listed again after a reconnect: nothing new
            if shown is not None:
                print(flush=True)
            if obj.get("_deleted"):
                print(f"retrainingpolicy {namespace}/{args.name} deleted", flush=True)
            else:
                _story(cluster, args, obj)
            shown = meta.get("resourceVersion")
    return 0


def _list(cluster: Cluster, args: argparse.Namespace, namespace: str | None) -> int:
    from retraining_operator.commands.status_view import align, table_header, table_row

    policies = cluster.policies(namespace)
    if not policies:
        print(_nothing_in(namespace), file=sys.stderr)
        return 0
    now = datetime.now(UTC)
    shape = {"wide": args.wide, "all_namespaces": namespace is None}
    rows = [table_row(p, now=now, **shape) for p in policies]
    print("\n".join(align([table_header(**shape), *rows])))
    return 0


def _watch_list(cluster: Cluster, args: argparse.Namespace, namespace: str | None) -> int:
    """Like `kubectl get -w`: the table, then one more line for each change."""
    from retraining_operator.commands.status_view import align, table_header, table_row

    shape = {"wide": args.wide, "all_namespaces": namespace is None}
    widths: list[int] = []
    seen: dict[tuple[str, str], str | None] = {}
    header_printed = said_none = False
    for batch in cluster.watch(namespace):
        now = datetime.now(UTC)
        rows = []
        for obj in batch:
            meta = obj.get("metadata") or {}
            key = (str(meta.get("namespace")), str(meta.get("name")))
            if key in seen and seen[key] == meta.get("resourceVersion"):
                continue  # listed again after a reconnect: nothing new
            seen[key] = meta.get("resourceVersion")
            rows.append(table_row(obj, now=now, **shape))
        if not rows:
            if not header_printed and not said_none:
                print(_nothing_in(namespace), file=sys.stderr, flush=True)
                said_none = True
            continue
        table = rows if header_printed else [table_header(**shape), *rows]
        print("\n".join(align(table, widths)), flush=True)
        header_printed = True
    return 0


def _nothing_in(namespace: str | None) -> str:
    where = f"in namespace {namespace}" if namespace else "in any namespace"
    return f"No retrainingpolicies found {where}."
