"""Reliability suite (issue #10): fixtures and the figures report.

Every case records what was injected and what was observed through the `report` fixture.
Each record is printed as one line (`[reliability #N] ...`), appended to
`<pytest basetemp>/.reliability-report.json` (and to `$RTP_RELIABILITY_REPORT` when set), and
the whole table is written at the end of the session, which is where the figures in
docs/reliability.md come from.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from typing import Any

import pytest

from reliability.scene import Scene
from retraining_standins.stack import AwsStandins
from support.kube import KubeCluster
from support.operator import OperatorProcess

REPORT_NAME = ".reliability-report.json"
_RECORDS = pytest.StashKey[list[dict[str, Any]]]()
_PATHS = pytest.StashKey[list[Path]]()
_CALL_REPORT = pytest.StashKey[pytest.TestReport]()


class CaseReport:
    """The figures of one case: `case(n, title)`, `inject(text)`, `observe(**figures)`."""

    def __init__(self, nodeid: str) -> None:
        self.nodeid = nodeid
        self.number = 0
        self.title = ""
        self.injected = ""
        self.scaling = ""
        self.observed: dict[str, Any] = {}
        self.started = time.monotonic()

    def case(self, number: int, title: str) -> CaseReport:
        self.number, self.title = number, title
        return self

    def inject(self, text: str, *, scaling: str = "") -> None:
        self.injected = text
        self.scaling = scaling

    def observe(self, **figures: Any) -> None:
        self.observed.update(figures)

    def line(self) -> str:
        figures = ", ".join(f"{k}={v}" for k, v in self.observed.items())
        return f"[reliability #{self.number}] {self.title} | injected: {self.injected} | {figures}"

    def summary(self) -> None:
        """Print the one-line summary (shown with -s, -rA, or when the test fails)."""
        print(self.line())

    def record(self, outcome: str) -> dict[str, Any]:
        return {
            "case": self.number,
            "title": self.title,
            "test": self.nodeid,
            "injected": self.injected,
            "scaling": self.scaling,
            "observed": self.observed,
            "outcome": outcome,
            "seconds": round(time.monotonic() - self.started, 1),
        }


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[Any]:
    outcome = yield
    report: pytest.TestReport = outcome.get_result()
    if report.when == "call" or (report.when == "setup" and report.failed):
        item.stash[_CALL_REPORT] = report


def _report_paths(config: pytest.Config, base: Path) -> list[Path]:
    if _PATHS not in config.stash:
        paths = [base / REPORT_NAME]
        extra = os.environ.get("RTP_RELIABILITY_REPORT")
        if extra:
            paths.append(Path(extra))
        for path in paths:
            path.write_text("[]\n")
        config.stash[_PATHS] = paths
        config.stash[_RECORDS] = []
    return config.stash[_PATHS]


@pytest.fixture
def report(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[CaseReport]:
    config = request.config
    paths = _report_paths(config, tmp_path_factory.getbasetemp())
    case = CaseReport(request.node.nodeid)
    yield case
    result = request.node.stash.get(_CALL_REPORT, None)
    outcome = result.outcome if result is not None else "error"
    records = config.stash[_RECORDS]
    records.append(case.record(outcome))
    for path in paths:
        path.write_text(json.dumps(records, indent=1, default=str) + "\n")


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    records = config.stash.get(_RECORDS, None)
    if not records:
        return
    terminalreporter.section("reliability figures")
    for record in sorted(records, key=lambda r: r["case"]):
        figures = ", ".join(f"{k}={v}" for k, v in record["observed"].items())
        terminalreporter.write_line(
            f"#{record['case']:>2} {record['outcome']:6} {record['seconds']:6.1f}s "
            f"{record['title']} | {figures}"
        )
    for path in config.stash[_PATHS]:
        terminalreporter.write_line(f"report: {path}")


@pytest.fixture
def scene(
    kube: KubeCluster,
    rtp_crd: Any,
    kube_namespace: str,
    aws: AwsStandins,
    operator_factory: Callable[..., OperatorProcess],
) -> Iterator[Scene]:
    """A namespace, the AWS stand-ins on a real-time clock, and the real operator on demand."""
    scene = Scene(kube, aws, kube_namespace, operator_factory)
    try:
        yield scene
    finally:
        scene.close()
