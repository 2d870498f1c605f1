"""The product's shape, checked by machine: no module over 600 lines, no function over 80
lines, none with more than 6 parameters (STYLE.md: more wants a context object).

A function is counted from its `def` line to its last line (decorators not counted); its
parameters are the positional and keyword-only ones, `*args` and `**kwargs` one each, and
not `self` or `cls`. Value objects' generated constructors (dataclass `__init__`) have no
source, so they are not counted.

EXCEPTIONS names what may exceed a limit, and why. It must match exactly: an exception
that no longer applies fails too, so the table only shrinks as the code gets there.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "operator" / "retraining_operator"
MAX_MODULE_LINES = 600
MAX_FUNCTION_LINES = 80
MAX_PARAMETERS = 6

_KOPF = "kopf passes a handler's arguments by name: its signature is the one kopf documents"

# "<module path>" or "<module path>:<qualified function name>" -> why it may exceed.
EXCEPTIONS: dict[str, str] = {
    "handlers.py:policy_daemon": _KOPF,
    "handlers.py:policy_deleted": _KOPF,
}


def _parameters(function: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    arguments = function.args
    named = [*arguments.posonlyargs, *arguments.args, *arguments.kwonlyargs]
    count = len(named) + (arguments.vararg is not None) + (arguments.kwarg is not None)
    if named[:1] and named[0].arg in ("self", "cls"):
        count -= 1
    return count


def over_the_limits(source: str, module: str) -> dict[str, str]:
    """What in one module's source exceeds a limit: key (as in EXCEPTIONS) -> by how much."""
    found: dict[str, str] = {}
    lines = len(source.splitlines())
    if lines > MAX_MODULE_LINES:
        found[module] = f"{lines} lines"

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                name = f"{prefix}{child.name}"
                length = (child.end_lineno or child.lineno) - child.lineno + 1
                parameters = _parameters(child)
                problems = [
                    *([f"{length} lines"] if length > MAX_FUNCTION_LINES else []),
                    *([f"{parameters} parameters"] if parameters > MAX_PARAMETERS else []),
                ]
                if problems:
                    found[f"{module}:{name}"] = ", ".join(problems)
                visit(child, f"{name}.")
            elif isinstance(child, ast.ClassDef):
                visit(child, f"{prefix}{child.name}.")
            else:
                visit(child, prefix)

    visit(ast.parse(source), "")
    return found


def _package_over_the_limits() -> dict[str, str]:
    found: dict[str, str] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        module = path.relative_to(PACKAGE).as_posix()
        found |= over_the_limits(path.read_text(encoding="utf-8"), module)
    return found


def test_nothing_exceeds_a_limit_without_an_exception() -> None:
    unexcused = {
        key: measure for key, measure in _package_over_the_limits().items() if key not in EXCEPTIONS
    }
    assert not unexcused, (
        f"over {MAX_MODULE_LINES} lines a module, {MAX_FUNCTION_LINES} lines or "
        f"{MAX_PARAMETERS} parameters a function: {unexcused}"
    )


def test_every_exception_still_applies() -> None:
    stale = sorted(set(EXCEPTIONS) - set(_package_over_the_limits()))
    assert not stale, f"within the limits now, remove from EXCEPTIONS: {stale}"


def test_the_measure_counts_as_documented() -> None:
    body = "\n".join(f"    x = {i}" for i in range(79))
    source = f"""
class Pool:
    def __init__(self, a, b, c, d, e, f): ...
    @classmethod
    def make(cls, a, b, c, d, e, f, g): ...

def eighty_lines():
{body}

def eighty_one_lines():
{body}
    x = 79

def seven(a, /, b, *args, c, d, e, **kwargs): ...

def six(a, b, c, *, d, e, f): ...

def outer():
    def inner(self, a, b, c, d, e, f, g): ...
"""
    assert over_the_limits(source, "m.py") == {
        "m.py:Pool.make": "7 parameters",
        "m.py:eighty_one_lines": "81 lines",
        "m.py:seven": "7 parameters",
        "m.py:outer.inner": "7 parameters",
    }
    assert over_the_limits("x = 1\n" * 601, "big.py") == {"big.py": "601 lines"}
    assert over_the_limits("x = 1\n" * 600, "big.py") == {}
