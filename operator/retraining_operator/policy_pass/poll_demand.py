"""What the configured polls ask of the operator's AWS call budget, operator-wide.

Each policy's poll records its listing interval here; the sum of one call per interval is
the demand. When it exceeds `--aws-calls-per-second`, polls cannot keep their intervals
whatever the scheduling: the operator says so once (a WARNING, the gauges), and each starved
policy's PollsStarved condition names the interval its polls can keep
(`schedule.sustainable_interval`).
"""

from __future__ import annotations

import logging
import threading

from retraining_operator import metrics
from retraining_operator.reconcile import schedule

log = logging.getLogger(__name__)


class PollDemand:
    """Policy UID -> its listing interval (seconds); thread-safe, one per operator."""

    def __init__(self, budget: float) -> None:
        self.budget = budget
        self._intervals: dict[str, float] = {}
        self._lock = threading.Lock()
        self._over = False

    def record(self, uid: str, interval: float) -> float:
        """Record a policy's interval; the demand of all of them (calls/s)."""
        with self._lock:
            self._intervals[uid] = interval
            demand = schedule.poll_demand(self._intervals.values())
            self._report(demand)
            return demand

    def forget(self, uid: str) -> None:
        with self._lock:
            self._intervals.pop(uid, None)
            self._report(schedule.poll_demand(self._intervals.values()))

    def _report(self, demand: float) -> None:
        metrics.POLL_DEMAND.set(demand)
        over = self.budget > 0 and demand > self.budget
        if over and not self._over:
            log.warning(
                "the configured polls need %.1f AWS calls/s, the budget is %g/s "
                "(--aws-calls-per-second): polls come %.2fx their pollInterval; lengthen "
                "pollInterval, use event-driven ingest, raise the budget, or shard",
                demand,
                self.budget,
                demand / self.budget,
            )
        elif self._over and not over:
            log.info("the configured polls fit the AWS call budget again (%.1f/s)", demand)
        self._over = over
