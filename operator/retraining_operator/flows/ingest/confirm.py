"""Ask A2I about the loops events name: a call per listing page, not one per event.

Each event claims a loop name and a creation time. The claims are sorted by creation time and
grouped into windows of at most `WINDOW` each; a window with a few claims is listed once
(`ListHumanLoops` of the policy's flow definition, `CreationTimeAfter/Before` around it: one
page confirms up to 100 loops), a window with one claim is described instead
(`DescribeHumanLoop`, one call, as a listing page would be). A listing stops after a
few pages more than its claims need; names it could not place are described (at most
`MAX_DESCRIBES` per settle), and what is left is undecided (the message comes back later).

A name that a complete listing of every window its claims point at does not contain is no
loop of this flow definition at that time (`UnknownLoop`); DescribeHumanLoop's NotFound says
the same, and a described loop of another flow definition is `ForeignLoop`. Neither can be
a loop this policy should ingest; the backstop listing would find a real one anyway.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from retraining_operator.aws import a2i
from retraining_operator.aws.errors import NotFound
from retraining_operator.aws.session import AwsSession
from retraining_operator.reconcile.events import LoopEvent

WINDOW = timedelta(minutes=10)
# The listing bounds are exclusive, and an event's time may be rounded: a little margin.
MARGIN = timedelta(seconds=1)
DESCRIBE_AT_MOST = 1  # claims in a window that are described rather than listed
MAX_DESCRIBES = 20  # per settle; the rest wait for redelivery


@dataclass
class Confirmation:
    """What A2I said about the named loops."""

    loops: dict[str, a2i.HumanLoop] = field(default_factory=dict)  # this flow's, by name
    outputs: dict[str, str] = field(default_factory=dict)  # output URIs DescribeHumanLoop gave
    dropped: dict[str, set[str]] = field(default_factory=dict)  # reason -> names
    undecided: set[str] = field(default_factory=set)
    calls: int = 0

    def drop(self, reason: str, name: str) -> None:
        self.dropped.setdefault(reason, set()).add(name)


@dataclass
class _Window:
    start: datetime
    end: datetime
    names: set[str] = field(default_factory=set)


def confirm(
    session: AwsSession, flow_arn: str, claims: Mapping[str, list[LoopEvent]]
) -> Confirmation:
    """A2I's word on every claimed name (see the module docstring). Raises `AwsError`."""
    answer = Confirmation()
    if not claims:
        return answer
    # Names with a claim in a window too small to list, or not listed to its end.
    unplaced: set[str] = set()
    for window in _windows(claims):
        if len(window.names) <= DESCRIBE_AT_MOST or not _list(
            session, flow_arn, window, claims, answer
        ):
            unplaced |= window.names
    describe: dict[str, None] = {}
    for name in claims:
        if name in answer.loops:
            continue
        if name in unplaced:
            describe[name] = None
        else:
            answer.drop("UnknownLoop", name)
    _describe(session, flow_arn, describe, answer)
    return answer


def _windows(claims: Mapping[str, list[LoopEvent]]) -> list[_Window]:
    points = sorted({(event.created, name) for name, named in claims.items() for event in named})
    windows: list[_Window] = []
    for created, name in points:
        if not windows or created - windows[-1].start > WINDOW:
            windows.append(_Window(start=created, end=created))
        windows[-1].end = created
        windows[-1].names.add(name)
    return windows


def _list(
    session: AwsSession,
    flow_arn: str,
    window: _Window,
    claims: Mapping[str, list[LoopEvent]],
    answer: Confirmation,
) -> bool:
    """List one window; True when it was listed to its end (absence then means absence)."""
    pages = 2 + len(window.names) // a2i.PAGE_SIZE
    for page in a2i.list_human_loops(
        session.a2i(),
        flow_arn,
        created_after=window.start - MARGIN,
        created_before=window.end + MARGIN,
    ):
        answer.calls += 1
        for loop in page:
            if loop.name in claims:
                answer.loops[loop.name] = loop
        if window.names <= answer.loops.keys():
            return True
        pages -= 1
        if pages == 0:
            return False
    return True


def _describe(
    session: AwsSession, flow_arn: str, names: dict[str, None], answer: Confirmation
) -> None:
    for count, name in enumerate(names):
        if count >= MAX_DESCRIBES:
            answer.undecided.add(name)
            continue
        answer.calls += 1
        try:
            described = a2i.describe_human_loop(session.a2i(), name)
        except NotFound:
            answer.drop("UnknownLoop", name)
            continue
        if described.loop.flow_definition_arn != flow_arn:
            answer.drop("ForeignLoop", name)
            continue
        answer.loops[name] = described.loop
        if described.output_uri is not None:
            answer.outputs[name] = described.output_uri
