"""Shared pytest configuration: fixtures live in plugin modules under tests/support/."""

import os
import secrets

pytest_plugins = ["support.kube", "support.aws", "support.operator", "support.iam_audit"]

# One ledger key for this test session, shared with the child processes tests start (a
# killed consumer, a memory probe): what one seals, the others verify. The operator itself
# (`retraining-operator run`) reads its key from its Secret instead.
os.environ.setdefault("RTP_PROCESS_LEDGER_KEY", secrets.token_hex(32))
