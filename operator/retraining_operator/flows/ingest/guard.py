"""Where ingest may read: only under the flow definition's S3OutputPath, as A2I states it.

A loop's output URI comes from A2I's key layout (predicted from an output prefix) or from
DescribeHumanLoop. Neither is read before it is checked against the flow definition's own
`OutputConfig.S3OutputPath` (DescribeFlowDefinition) and, in Scoped mode, against the
tenant's readable prefixes — on a brand-new ledger as on an old one, for the listing poll as
for an events settle. The path is described lazily (a poll with nothing to read costs no
call) and kept for a day in the policy's memo: a flow definition cannot be changed in place,
and a recreated one is described again as soon as an output falls outside the kept path.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from retraining_operator.aws import a2i
from retraining_operator.aws.errors import AwsError
from retraining_operator.aws.session import AwsSession
from retraining_operator.flows.ingest.results import IngestFailed, ingest_error
from retraining_operator.reconcile.tenancy import s3_within

PATH_TTL_SECONDS = 24 * 3600.0


class FlowPathCache:
    """Flow definition name -> (S3OutputPath, when described), kept in the policy's memo."""

    def __init__(self, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._monotonic = monotonic
        self._paths: dict[str, tuple[str, float]] = {}
        self._lock = threading.Lock()
        self.described = 0  # DescribeFlowDefinition calls made (tests, benches)

    def path(self, session: AwsSession, flow_name: str, *, fresh: bool = False) -> str:
        now = self._monotonic()
        with self._lock:
            known = self._paths.get(flow_name)
            if known is not None and not fresh and now - known[1] < PATH_TTL_SECONDS:
                return known[0]
        try:
            path = a2i.flow_output_path(session.sagemaker(), flow_name)
        except AwsError as error:
            raise ingest_error("cannot describe the flow definition", error) from error
        with self._lock:
            self.described += 1
            self._paths[flow_name] = (path, now)
        return path


class OutputGuard:
    """The checks every output URI passes before it is read (thread-safe)."""

    def __init__(
        self,
        session: AwsSession,
        flow_name: str,
        paths: FlowPathCache,
        may_read: Callable[[str], bool] | None,
    ) -> None:
        self.session = session
        self.flow_name = flow_name
        self.paths = paths
        self.may_read = may_read
        self._path: str | None = None
        self._refreshed = False
        self._lock = threading.Lock()

    def ready(self, prefix: str | None) -> str:
        """The flow definition's S3OutputPath, once it is known and readable by the tenant;
        raises `IngestFailed` when the tenant may not read it or `prefix` (the ledger's
        remembered output prefix) lies outside it. Called before the first read."""
        with self._lock:
            if self._path is None:
                self._path = self._checked(self.paths.path(self.session, self.flow_name))
            path = self._path
        if prefix is not None and not s3_within(prefix, path):
            raise IngestFailed(
                "LedgerOutputPrefixForeign",
                f"the ingest ledger's outputPrefix {prefix} is not under the flow definition's "
                f"S3OutputPath {path}. Nothing was read; delete the ledger's outputPrefix or "
                "restore the ledger",
            )
        return path

    def allows(self, uri: str) -> bool:
        """Whether `uri` may be read: under the S3OutputPath (described again once, if it
        is not, in case the flow definition was recreated elsewhere)."""
        path = self.ready(None)
        if s3_within(uri, path):
            return True
        with self._lock:
            if self._refreshed:
                return False
            self._refreshed = True
        fresh = self._checked(self.paths.path(self.session, self.flow_name, fresh=True))
        with self._lock:
            self._path = fresh
        return s3_within(uri, fresh)

    def _checked(self, path: str) -> str:
        if self.may_read is not None and not self.may_read(path):
            raise IngestFailed(
                "OutOfScope",
                f"the flow definition's S3OutputPath {path} is not under allow.s3.read of this "
                "namespace's RetrainingTenant: nothing was read",
            )
        return path
