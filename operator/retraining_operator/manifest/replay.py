"""Replay: mix samples of the original training manifest into each run's train set.

`samplesPerNewSample` old lines are drawn for every new training line (catastrophic
forgetting is what the notebook warns about). The draw is deterministic for a run id, so
a retried assembly writes the same manifest, and it streams: the replay manifest is
read twice (count, then select) and never held in memory.

Selection is Knuth's sequential sampling (Algorithm S): each line is taken with
probability (wanted - taken) / (remaining), which yields exactly `wanted` distinct lines
in file order using O(1) memory. If more lines are wanted than the manifest has, every
line is taken `wanted // total` times and the remainder is drawn as above.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Iterable, Iterator

from retraining_operator.manifest.convert import OBJECT_DETECTION_TYPE


def replay_rng(run_id: str) -> random.Random:
    seed = int.from_bytes(hashlib.sha256(f"replay:{run_id}".encode()).digest()[:8], "big")
    return random.Random(seed)  # noqa: S311 - sampling, not security


def selection(total: int, wanted: int, run_id: str) -> Iterator[int]:
    """How many times to take each of `total` lines (one int per line, in order).

    The counts sum to exactly `wanted` (when total > 0).
    """
    if total <= 0:
        return
    full, rest = divmod(max(wanted, 0), total)
    rng = replay_rng(run_id)
    remaining_lines = total
    for _ in range(total):
        extra = 0
        if rest > 0 and rng.random() * remaining_lines < rest:
            extra = 1
            rest -= 1
        remaining_lines -= 1
        yield full + extra


def replayed(lines: Iterable[bytes], total: int, wanted: int, run_id: str) -> Iterator[bytes]:
    """The selected lines (repeated as selected), in file order.

    `lines` must yield the same `total` valid lines that were counted.
    """
    counts = selection(total, wanted, run_id)
    for line, times in zip(lines, counts, strict=False):
        for _ in range(times):
            yield line


def normalize_replay_line(line: bytes, attribute_name: str) -> bytes | None:
    """A replay line in this policy's attribute name, or None if it is not usable.

    Lines that already carry `<attribute_name>` are kept byte for byte. A Ground Truth
    object-detection line under another attribute (e.g. `bounding-box`) is renamed to
    `<attribute_name>` / `<attribute_name>-metadata`, since the training channel reads
    exactly `[source-ref, <attribute_name>]`. Anything else returns None (the caller counts it).
    """
    text = line.strip()
    if not text:
        return None
    try:
        document = json.loads(text)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(document, dict) or not isinstance(document.get("source-ref"), str):
        return None
    if isinstance(document.get(attribute_name), dict):
        return text
    candidates = [
        key
        for key, value in document.items()
        if key != "source-ref"
        and not key.endswith("-metadata")
        and isinstance(value, dict)
        and "annotations" in value
        and isinstance(document.get(f"{key}-metadata"), dict)
        and document[f"{key}-metadata"].get("type") == OBJECT_DETECTION_TYPE
    ]
    if len(candidates) != 1:
        return None
    old = candidates[0]
    renamed = {
        "source-ref": document["source-ref"],
        attribute_name: document[old],
        f"{attribute_name}-metadata": document[f"{old}-metadata"],
    }
    return json.dumps(renamed).encode("utf-8")


def interleave(
    new_lines: Iterable[bytes], replay_lines: Iterator[bytes], per_new: int
) -> Iterator[bytes]:
    """Each new line followed by up to `per_new` replay lines; leftovers at the end."""
    for line in new_lines:
        yield line
        for _ in range(per_new):
            old = next(replay_lines, None)
            if old is None:
                break
            yield old
    yield from replay_lines
