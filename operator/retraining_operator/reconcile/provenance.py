"""Provenance of training data: the operator seals what it writes, and reads only what it sealed.

Anyone who can write a policy's `dataset.outputS3Uri` prefix can write the ingest ledger and
the pending segments beside it. Content addressing (a segment named by its sha256) proves
that a segment was not changed after it was listed, not who listed it. So the operator seals
the ledger with a keyed MAC (HMAC-SHA256) whose key nobody else has: the ledger key, kept in
a Kubernetes Secret in the operator's namespace (docs/tenancy.md, "Threat model").

- Each policy seals with its own key, derived from the ledger key and the policy's UID, so a
  ledger (or a segment entry) copied from another policy's prefix does not verify either.
- The whole ledger document carries one MAC over its canonical JSON (keys sorted, no
  spaces), so any change to it (a loop marked settled, a run's manifest URI, the output
  prefix) is detected; each pending segment entry carries its own MAC too, so a planted
  segment is named as such (`PendingSegmentTampered`) rather than as a changed ledger.
- A MAC names the key it was made with (`<key id>:<hex>`): after a rotation, ledgers sealed
  with a previous key still verify and are resealed with the current one on their next write.

Pure: no I/O. The key is loaded by the runtime (`workflow/ledger_key.py`).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

KEY_BYTES = 32
# In the ledger key Secret: `current` seals; any other key (e.g. `previous`) still verifies.
CURRENT_KEY = "current"
# Domain separation: a MAC made for one purpose never verifies for another.
_DERIVE = b"a2i-retraining-operator/ledger/v2\x00"
_LEDGER = b"ledger\x00"
_SEGMENT = b"segment\x00"


class WeakKey(ValueError):
    """A ledger key that cannot be used (too short)."""


@dataclass(frozen=True)
class SealKey:
    """One ledger key: its secret bytes and a short public id (a hash prefix of them)."""

    secret: bytes

    def __post_init__(self) -> None:
        if len(self.secret) < 16:
            raise WeakKey("a ledger key needs at least 16 bytes")

    @property
    def key_id(self) -> str:
        return hashlib.sha256(b"key-id\x00" + self.secret).hexdigest()[:8]

    @classmethod
    def generate(cls) -> SealKey:
        return cls(secrets.token_bytes(KEY_BYTES))

    def __repr__(self) -> str:  # never print the secret
        return f"SealKey(id={self.key_id})"


@dataclass(frozen=True)
class Keyring:
    """The key the operator seals with, and older keys it still accepts (rotation)."""

    current: SealKey
    previous: tuple[SealKey, ...] = ()

    def key(self, key_id: str) -> SealKey | None:
        for key in (self.current, *self.previous):
            if hmac.compare_digest(key.key_id, key_id):
                return key
        return None

    def for_policy(self, policy_uid: str) -> Sealer:
        return Sealer(self, policy_uid)


@dataclass(frozen=True)
class Sealer:
    """Seals and verifies one policy's ledger."""

    keyring: Keyring
    policy_uid: str

    def _derived(self, key: SealKey) -> bytes:
        return hmac.new(key.secret, _DERIVE + self.policy_uid.encode(), hashlib.sha256).digest()

    def _mac(self, key: SealKey, purpose: bytes, payload: bytes) -> str:
        digest = hmac.new(self._derived(key), purpose + payload, hashlib.sha256).hexdigest()
        return f"{key.key_id}:{digest}"

    def _verify(self, purpose: bytes, payload: bytes, tag: object) -> bool:
        if not isinstance(tag, str) or tag.count(":") != 1:
            return False
        key_id, _ = tag.split(":")
        key = self.keyring.key(key_id)
        return key is not None and hmac.compare_digest(self._mac(key, purpose, payload), tag)

    # -- the ledger document -----------------------------------------------------------

    def seal_document(self, document: Mapping[str, Any]) -> str:
        return self._mac(self.keyring.current, _LEDGER, canonical(document))

    def verify_document(self, document: Mapping[str, Any], tag: object) -> bool:
        return self._verify(_LEDGER, canonical(document), tag)

    # -- one pending segment -----------------------------------------------------------

    def seal_segment(self, sha256: str, samples: int, loops: int) -> str:
        return self._mac(self.keyring.current, _SEGMENT, _segment(sha256, samples, loops))

    def verify_segment(self, sha256: str, samples: int, loops: int, tag: object) -> bool:
        return self._verify(_SEGMENT, _segment(sha256, samples, loops), tag)


def canonical(document: Mapping[str, Any]) -> bytes:
    """The bytes a ledger MAC covers: the document as sorted, compact JSON (so re-indenting
    or reordering a sealed ledger does not break its seal, and changing a value does)."""
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode("utf-8")


def _segment(sha256: str, samples: int, loops: int) -> bytes:
    return f"{sha256}:{samples}:{loops}".encode()
