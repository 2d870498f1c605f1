"""JSON Lines bookkeeping for streamed, content-addressed manifests (pure).

`PartBuffer` collects lines into upload parts of at least `part_size` bytes (S3
multipart parts must be >= 5 MiB except the last), counts lines and hashes the whole
content on the way, so a writer never holds more than about one part in memory and
knows the object's content address (SHA-256) when the last part is out.
"""

from __future__ import annotations

import hashlib

MIN_PART_SIZE = 5 * 1024 * 1024
DEFAULT_PART_SIZE = 8 * 1024 * 1024


def as_line(line: bytes | str) -> bytes:
    """One JSON Lines record: the bytes without surrounding whitespace, plus a newline."""
    data = line.encode("utf-8") if isinstance(line, str) else line
    data = data.strip()
    if not data or b"\n" in data:
        raise ValueError("a JSON Lines record must be non-empty and fit on one line")
    return data + b"\n"


class PartBuffer:
    """Accumulates lines; hands out full parts; tracks line count, size and SHA-256."""

    def __init__(self, part_size: int = DEFAULT_PART_SIZE) -> None:
        if part_size < 1:
            raise ValueError("part_size must be positive")
        self.part_size = part_size
        self.lines = 0
        self.size = 0
        self._hash = hashlib.sha256()
        self._chunks: list[bytes] = []
        self._buffered = 0

    def add(self, line: bytes | str) -> bytes | None:
        """Add one record; returns a part when at least `part_size` bytes are buffered."""
        data = as_line(line)
        self.lines += 1
        self.size += len(data)
        self._hash.update(data)
        self._chunks.append(data)
        self._buffered += len(data)
        if self._buffered >= self.part_size:
            return self.take()
        return None

    def take(self) -> bytes:
        """Everything buffered so far (possibly empty), as one part."""
        part = b"".join(self._chunks)
        self._chunks = []
        self._buffered = 0
        return part

    @property
    def buffered(self) -> int:
        return self._buffered

    @property
    def sha256(self) -> str:
        return self._hash.hexdigest()
