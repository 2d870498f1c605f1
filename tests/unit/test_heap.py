"""The operator trims the C heap every minute while kopf runs (issue 18: RSS per policy)."""

from __future__ import annotations

import threading

import pytest

from retraining_operator import heap


def test_trims_while_running_and_stops_after(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    trimmed = threading.Event()

    def trim(pad: int) -> int:
        calls.append(pad)
        trimmed.set()
        return 1

    monkeypatch.setattr(heap, "_malloc_trim", lambda: trim)
    with heap.trimmed(0.01):
        assert trimmed.wait(5)
    after = len(calls)
    assert calls[0] == 0
    assert not any(t.name == "heap-trim" for t in threading.enumerate())
    assert len(calls) == after


def test_nothing_to_trim_without_glibc(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(heap, "_malloc_trim", lambda: None)
    with heap.trimmed(0.01):
        assert not any(t.name == "heap-trim" for t in threading.enumerate())


def test_glibc_malloc_trim_is_found_here() -> None:
    assert heap._malloc_trim() is not None  # the image's Python runs on glibc (Debian)
