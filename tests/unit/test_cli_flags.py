"""`run`'s flags take their defaults from environment variables, read when `run` uses them.

A bad value (RTP_TICK_SECONDS=30s) used to crash every command, `--version` and `--help`
included, with a traceback while the parser was built. Now only `run` reads the variables,
and a bad one stops it with argparse's exit code 2 and the variable's name and value.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from retraining_operator.cli import FromEnvironment, build_parser

ROOT = Path(__file__).resolve().parents[2]


def _cli(*argv: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "retraining_operator", *argv],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=60,
    )


def _run_parser() -> argparse.ArgumentParser:
    (sub,) = (a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    parser: argparse.ArgumentParser = sub.choices["run"]
    return parser


def _environment_flags() -> Iterator[tuple[argparse.Action, FromEnvironment]]:
    for action in _run_parser()._actions:
        if isinstance(action.default, FromEnvironment):
            yield action, action.default


@pytest.mark.parametrize("argv", [["--version"], ["--help"], ["iam-policy", "--help"]])
def test_other_commands_ignore_a_bad_variable(argv: list[str]) -> None:
    done = _cli(*argv, RTP_TICK_SECONDS="30s")
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr


def test_run_help_ignores_a_bad_variable() -> None:
    done = _cli("run", "--help", RTP_TICK_SECONDS="30s")
    assert done.returncode == 0, done.stderr
    assert "RTP_TICK_SECONDS" in done.stdout


def test_run_stops_with_exit_code_2_naming_the_variable_and_its_value() -> None:
    done = _cli("run", RTP_TICK_SECONDS="30s")
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert "RTP_TICK_SECONDS='30s'" in done.stderr
    assert "--tick-seconds" in done.stderr


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("RTP_METRICS_PORT", "9090/tcp"),
        ("RTP_OBSERVE_SECONDS", "1m"),
        ("RTP_MAX_WORKERS", "2.5"),
        ("RTP_AWS_CALLS_PER_SECOND", "lots"),
        ("RTP_SHARDS", ""),
        ("RTP_SHARD", "first"),
        ("RTP_LOG_FORMAT", "xml"),
        ("RTP_TENANCY_MODE", "scoped"),
        ("RTP_LEADER_ELECTION", "enabled"),
        ("RTP_ALLOW_ENDPOINT_ADOPTION", "sure"),
    ],
)
def test_each_bad_value_is_refused_by_name(
    variable: str, value: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(SystemExit) as stopped:
        build_parser().parse_args(["run"])
    assert stopped.value.code == 2
    assert f"environment variable {variable}={value!r}" in capsys.readouterr().err


def test_building_the_parser_reads_no_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    read: list[str] = []

    class Watched(dict[str, str]):
        def get(self, key: str, default: object = None) -> object:  # type: ignore[override]
            read.append(key)
            return super().get(key, default)

        def __getitem__(self, key: str) -> str:
            read.append(key)
            return super().__getitem__(key)

    monkeypatch.setattr(os, "environ", Watched(os.environ))
    parser = build_parser()
    with pytest.raises(SystemExit):
        parser.parse_args(["iam-policy", "--help"])
    assert not [v for v in read if v.startswith(("RTP_", "POD_"))]
    parser.parse_args(["run"])
    assert "RTP_TICK_SECONDS" in read


def test_valid_variables_are_honoured(monkeypatch: pytest.MonkeyPatch) -> None:
    for variable, value in {
        "RTP_WATCH_NAMESPACES": "vision, audio",
        "RTP_TICK_SECONDS": "2.5",
        "RTP_MAX_WORKERS": "4",
        "RTP_LOG_FORMAT": "json",
        "RTP_TENANCY_MODE": "Scoped",
        "RTP_LEADER_ELECTION": "TRUE",
        "RTP_ALLOW_ENDPOINT_ADOPTION": "false",
        "RTP_PEERING": "",
        "RTP_LIVENESS": "",
        "POD_ID": "a2i-retraining-operator-2",
        "POD_NAMESPACE": "operators",
    }.items():
        monkeypatch.setenv(variable, value)
    monkeypatch.delenv("RTP_SHARD", raising=False)
    monkeypatch.delenv("RTP_LEASE_NAMESPACE", raising=False)
    args = build_parser().parse_args(["run"])
    assert args.namespace == ["vision", "audio"]
    assert args.tick_seconds == 2.5
    assert args.max_workers == 4
    assert args.log_format == "json"
    assert args.tenancy_mode == "Scoped"
    assert args.leader_election is True
    assert args.allow_endpoint_adoption is False
    assert args.peering is None  # empty: no peering
    assert args.liveness == ""  # empty: no liveness endpoint
    assert args.identity == "a2i-retraining-operator-2"
    assert args.shard == 2  # the StatefulSet ordinal of POD_ID
    assert args.lease_namespace == "operators"


def test_unset_variables_give_the_documented_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for variable in [d.variable for _, d in _environment_flags()] + ["POD_NAMESPACE"]:
        monkeypatch.delenv(variable, raising=False)
    args = build_parser().parse_args(["run"])
    assert args.namespace == []
    assert args.allowed_role_pattern == []
    assert (args.tick_seconds, args.observe_seconds) == (30.0, 30.0)
    assert (args.max_workers, args.fetch_concurrency, args.max_fetches_per_poll) == (16, 16, 1000)
    assert (args.aws_calls_per_second, args.namespace_calls_per_second) == (20.0, 0.0)
    assert (args.metrics_port, args.metrics_bind_address) == (9090, "0.0.0.0")
    assert args.liveness == "http://0.0.0.0:8080/healthz"
    assert (args.log_format, args.tenancy_mode) == ("text", "Single")
    assert (args.leader_election, args.allow_endpoint_adoption) == (False, False)
    assert (args.lease_name, args.lease_namespace) == ("a2i-retraining-operator", "default")
    assert (args.shards, args.shard) == (1, 0)
    assert args.ledger_key_secret == "a2i-retraining-operator-ledger-key"
    assert (args.ledger_key_namespace, args.ledger_key_file, args.peering) == (
        "default",
        None,
        None,
    )


def test_a_flag_given_overrides_its_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RTP_TICK_SECONDS", "30s")  # bad, but not used: the flag is given
    monkeypatch.setenv("RTP_MAX_WORKERS", "4")
    monkeypatch.setenv("RTP_LEADER_ELECTION", "true")
    monkeypatch.setenv("RTP_WATCH_NAMESPACES", "vision,audio")
    args = build_parser().parse_args(
        ["run", "--tick-seconds=5", "--max-workers=8", "--no-leader-election", "-n", "text"]
    )
    assert (args.tick_seconds, args.max_workers, args.leader_election) == (5.0, 8, False)
    assert args.namespace == ["text"]


def test_readme_table_names_every_flag_with_its_variable_and_default() -> None:
    """README's "Configuration (operator)" table: one row per flag (or per group of flags),
    naming the flag, its variable and, where it is a value, its default."""
    rows = [
        line
        for line in (ROOT / "README.md").read_text().splitlines()
        if re.match(r"\| `--[a-z]", line)
    ]
    problems = []
    for action, default in _environment_flags():
        flag = f"`{action.option_strings[0]}`"
        row = next((r for r in rows if flag in r.split("|")[1]), None)
        if row is None:
            problems.append(f"{flag}: no row")
            continue
        _, _flags, variables, defaults, _meaning, _ = row.split("|")
        if f"`{default.variable}`" not in variables:
            problems.append(f"{flag}: the row does not name {default.variable}")
        if default.fallback not in ("", "false") and default.fallback not in defaults:
            problems.append(f"{flag}: the row's default is not {default.fallback}")
    assert not problems
