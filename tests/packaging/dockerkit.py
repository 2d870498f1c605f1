"""Read the Dockerfile and .dockerignore the way Docker does (enough for the tests)."""

from __future__ import annotations

import os
import re

import pytest
from helmkit import REPO_ROOT

DOCKERFILE = REPO_ROOT / "Dockerfile"
DOCKERIGNORE = REPO_ROOT / ".dockerignore"
# Lines for the terminal summary (tests/packaging/conftest.py), e.g. the measured install size.
INSTALL_SUMMARY = pytest.StashKey[list[str]]()


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with line continuations joined and comments dropped."""
    out: list[tuple[str, str]] = []
    logical = ""
    for line in DOCKERFILE.read_text().splitlines():
        if not logical and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.rstrip().endswith("\\"):
            logical += line.rstrip()[:-1] + " "
            continue
        logical += line
        keyword, _, args = logical.strip().partition(" ")
        out.append((keyword.upper(), " ".join(args.split())))
        logical = ""
    return out


def stages() -> list[list[tuple[str, str]]]:
    result: list[list[tuple[str, str]]] = []
    for keyword, args in instructions():
        if keyword == "FROM":
            result.append([])
        if result:
            result[-1].append((keyword, args))
    return result


def docker_pattern(pattern: str) -> re.Pattern[str]:
    """Docker's .dockerignore matching (moby/patternmatcher): `**` any depth, `*` and `?` within
    one path element; a pattern also covers everything below a matching directory."""
    regex = ""
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            regex += "(.*/)?"
            i += 3
        elif pattern.startswith("**", i):
            regex += ".*"
            i += 2
        elif pattern[i] == "*":
            regex += "[^/]*"
            i += 1
        elif pattern[i] == "?":
            regex += "[^/]"
            i += 1
        else:
            regex += re.escape(pattern[i])
            i += 1
    return re.compile(regex + "(/.*)?")


def build_context() -> set[str]:
    """The files `docker build .` would send, by the rules in .dockerignore (last match wins)."""
    rules: list[tuple[bool, str, re.Pattern[str]]] = []
    for raw in DOCKERIGNORE.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        text = os.path.normpath(line.lstrip("!")).lstrip("/")
        rules.append((negate, text, docker_pattern(text)))

    def excluded(rel: str) -> bool:
        out = False
        for negate, _, regex in rules:
            if regex.fullmatch(rel):
                out = not negate
        return out

    def may_reinclude_below(rel: str) -> bool:
        # Like Docker, descend into an excluded directory only if a `!` pattern could match
        # something inside it (compare the pattern's literal prefix).
        for negate, text, _ in rules:
            literal = re.split(r"[*?\[]", text, maxsplit=1)[0]
            if negate and (literal.startswith(rel + "/") or (rel + "/").startswith(literal)):
                return True
        return False

    sent: set[str] = set()
    for directory, dirs, files in os.walk(REPO_ROOT):
        base = os.path.relpath(directory, REPO_ROOT)
        prefix = "" if base == "." else base + "/"
        dirs[:] = [
            d
            for d in dirs
            if not (prefix == "" and d == ".git")
            and (not excluded(prefix + d) or may_reinclude_below(prefix + d))
        ]
        sent |= {prefix + f for f in files if not excluded(prefix + f)}
    return sent
