"""The operator's two words for failure, shared by every layer (it imports nothing).

A reconcile pass ends in one of three ways when something goes wrong (ACK's requeue vs
terminal errors; kopf's TemporaryError vs PermanentError):

- `RetryLater`: waiting may help (AWS throttled or busy, an endpoint still Updating, a
  conflicting write). The pass stops where it is; the next one carries on, `after`
  seconds from now when the raiser knows better than the default.
- `NeedsAttention`: a person has to change something (the spec, IAM, a quota). The
  policy is Degraded with `reason` (CamelCase, for conditions and Events) and `message`
  (what to change), and an Event says so once.
- anything else is a bug: the pass's last-resort catch reports it as Degraded
  `InternalError`, logged once per distinct error, and retries with backoff.

Every gateway and domain error subclasses one of the two, so the pass has one seam that
catches exactly these.
"""

from __future__ import annotations


class RetryLater(Exception):
    """Stop this pass here; a later pass carries on (nothing for a person to do yet)."""

    def __init__(self, message: str, after: float | None = None, *, reason: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.after = after
        # CamelCase word for the Warning Event that says the pass will try again.
        self.reason = reason or "RetryLater"


class NeedsAttention(Exception):
    """A person must act: the policy goes Degraded with `reason` and `message`."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
