"""Every operator agrees which shard serves a policy, without talking to the others."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections import Counter

from hypothesis import given
from hypothesis import strategies as st

from retraining_operator.reconcile.sharding import shard_of


@given(st.uuids(), st.integers(min_value=1, max_value=64))
def test_a_policy_has_exactly_one_shard_in_range(uid: uuid.UUID, shards: int) -> None:
    assert 0 <= shard_of(str(uid), shards) < shards


def test_unsharded_is_shard_zero() -> None:
    assert shard_of("anything", 1) == 0
    assert shard_of("anything", 0) == 0


def test_the_same_in_another_process() -> None:
    # Python's hash() is salted per process; the shard must not be.
    uids = [str(uuid.UUID(int=i * 7919)) for i in range(50)]
    here = [shard_of(u, 3) for u in uids]
    code = (
        "import sys; from retraining_operator.reconcile.sharding import shard_of; "
        f"print(','.join(str(shard_of(u, 3)) for u in {uids!r}))"
    )
    there = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert there == ",".join(map(str, here))


def test_shards_are_balanced() -> None:
    counts = Counter(shard_of(str(uuid.uuid4()), 3) for _ in range(3000))
    assert all(850 <= count <= 1150 for count in counts.values()), counts
