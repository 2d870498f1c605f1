"""manifest/split.py, replay.py, jsonl.py: stable split, exact deterministic replay, parts."""

from __future__ import annotations

import hashlib
import json
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from retraining_operator.manifest import replay
from retraining_operator.manifest.jsonl import PartBuffer, as_line
from retraining_operator.manifest.split import is_validation, source_ref_of, split_bucket

REFS = st.text(min_size=1, max_size=60).map(lambda text: f"s3://bucket/{text}")


@given(ref=REFS, low=st.integers(0, 50), high=st.integers(0, 50))
def test_split_is_stable_and_monotonic_in_the_percentage(ref: str, low: int, high: int) -> None:
    low, high = sorted((low, high))
    assert split_bucket(ref) == split_bucket(ref)
    # An image in the validation set at p% stays there at any larger percentage.
    if is_validation(ref, low):
        assert is_validation(ref, high)
    assert not is_validation(ref, 0)


def test_split_is_close_to_the_percentage() -> None:
    refs = [f"s3://bucket/img-{i}.jpg" for i in range(20_000)]
    share = sum(is_validation(ref, 10) for ref in refs) / len(refs)
    assert 0.09 < share < 0.11


def test_source_ref_of() -> None:
    assert source_ref_of(b'{"source-ref": "s3://b/k"}') == "s3://b/k"
    with pytest.raises(ValueError, match="source-ref"):
        source_ref_of(b'{"x": 1}')


@settings(max_examples=200, deadline=None)
@given(total=st.integers(0, 300), wanted=st.integers(0, 1000), run=st.text(max_size=10))
def test_selection_takes_exactly_what_is_wanted(total: int, wanted: int, run: str) -> None:
    counts = list(replay.selection(total, wanted, run))
    assert len(counts) == total
    assert sum(counts) == (wanted if total else 0)
    assert max(counts, default=0) - min(counts, default=0) <= 1  # as even as possible
    assert counts == list(replay.selection(total, wanted, run))  # deterministic per run


def test_selection_differs_between_runs_and_is_uniform() -> None:
    picks = Counter[int]()
    for run in range(400):
        chosen = [i for i, n in enumerate(replay.selection(10, 3, f"r{run}")) if n]
        picks.update(chosen)
    assert all(90 < picks[i] < 150 for i in range(10)), picks  # 400 * 3 / 10 = 120 each
    first = list(replay.selection(100, 10, "a"))
    assert first != list(replay.selection(100, 10, "b"))


def test_replayed_lines_and_interleave() -> None:
    lines = [f"old-{i}".encode() for i in range(5)]
    chosen = list(replay.replayed(iter(lines), 5, 12, "run"))
    assert len(chosen) == 12
    assert Counter(chosen).most_common(1)[0][1] <= 3
    mixed = list(replay.interleave(iter([b"n1", b"n2"]), iter(chosen[:6]), 3))
    assert mixed[0] == b"n1"
    assert mixed[4] == b"n2"
    assert len(mixed) == 8


def _gt_line(attribute: str) -> dict[str, object]:
    return {
        "source-ref": "s3://b/i.jpg",
        attribute: {"annotations": [], "image_size": [{"width": 1, "depth": 3, "height": 1}]},
        f"{attribute}-metadata": {"type": "groundtruth/object-detection"},
    }


def test_normalize_replay_line() -> None:
    same = json.dumps(_gt_line("a2i-retraining")).encode()
    assert replay.normalize_replay_line(same + b"  ", "a2i-retraining") == same
    renamed = replay.normalize_replay_line(json.dumps(_gt_line("bbox")).encode(), "a2i")
    assert renamed is not None
    document = json.loads(renamed)
    assert set(document) == {"source-ref", "a2i", "a2i-metadata"}
    assert replay.normalize_replay_line(b"", "a") is None
    assert replay.normalize_replay_line(b"{broken", "a") is None
    assert replay.normalize_replay_line(b'{"source-ref": "s3://b/k"}', "a") is None


def test_part_buffer_parts_count_and_hash() -> None:
    buffer = PartBuffer(part_size=10)
    parts = [part for line in [b"aaaa", b"bbbb", "cccc", b"dd"] if (part := buffer.add(line))]
    parts.append(buffer.take())
    content = b"".join(parts)
    assert content == b"aaaa\nbbbb\ncccc\ndd\n"
    assert [len(part) for part in parts] == [10, 8]
    assert buffer.lines == 4
    assert buffer.size == len(content)
    assert buffer.sha256 == hashlib.sha256(content).hexdigest()
    with pytest.raises(ValueError, match="one line"):
        as_line(b"a\nb")
    with pytest.raises(ValueError, match="non-empty"):
        as_line(b"   ")
