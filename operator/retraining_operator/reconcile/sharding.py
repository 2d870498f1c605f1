"""Which shard serves a policy: a stable hash of its UID, modulo the number of shards.

The UID never changes for the life of an object, and sha256 is the same in every process
and Python version (unlike `hash()`), so every shard agrees on the owner without talking.
"""

from __future__ import annotations

import hashlib


def shard_of(uid: str, shards: int) -> int:
    if shards <= 1:
        return 0
    digest = hashlib.sha256(uid.encode()).digest()
    return int.from_bytes(digest[:8], "big") % shards
