"""Packaging tests: report the measured image install size at the end of the run."""

from __future__ import annotations

from typing import Any

import pytest
from dockerkit import INSTALL_SUMMARY


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    for line in config.stash.get(INSTALL_SUMMARY, []):
        terminalreporter.write_line(line)
