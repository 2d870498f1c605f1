"""Pagination with opaque, key-based `NextToken`s.

A token remembers the sort key of the last item returned, not an offset, so items created
between two pages neither repeat nor shift an item out of the listing.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, TypeVar

from retraining_standins.errors import validation

T = TypeVar("T")
SortKey = tuple[float | str, str]


def time_key(when: datetime, name: str) -> SortKey:
    return (when.timestamp(), name)


def name_key(name: str) -> SortKey:
    return (name.lower(), name)


def paginate(
    items: Sequence[T],
    key: Callable[[T], SortKey],
    *,
    descending: bool,
    max_results: int,
    next_token: str | None,
    scope: str,
) -> tuple[list[T], str | None]:
    ordered = sorted(items, key=key, reverse=descending)
    if next_token:
        last = _decode(next_token, scope)
        if descending:
            ordered = [i for i in ordered if key(i) < last]
        else:
            ordered = [i for i in ordered if key(i) > last]
    page = ordered[:max_results]
    token = _encode(key(page[-1]), scope) if len(ordered) > max_results else None
    return page, token


def filter_common(
    items: list[Any], params: Mapping[str, Any], created: Callable[[Any], datetime]
) -> list[Any]:
    """The items a List call's `NameContains` and `CreationTimeAfter/Before` keep."""
    if "NameContains" in params:
        needle = str(params["NameContains"]).lower()
        items = [i for i in items if needle in i.name.lower()]
    if "CreationTimeAfter" in params:
        items = [i for i in items if created(i) > params["CreationTimeAfter"]]
    if "CreationTimeBefore" in params:
        items = [i for i in items if created(i) < params["CreationTimeBefore"]]
    return items


def sort_key(
    sort_by: str,
    name: Callable[[Any], str],
    created: Callable[[Any], datetime],
    status: Callable[[Any], str] | None = None,
) -> Callable[[Any], SortKey]:
    """A List call's `SortBy` (Name, Status, else CreationTime) as a `paginate` key."""
    if sort_by == "Name":
        return lambda i: name_key(name(i))
    if sort_by == "Status" and status is not None:
        return lambda i: (status(i), name(i))
    return lambda i: time_key(created(i), name(i))


def with_token(result: dict[str, Any], token: str | None) -> dict[str, Any]:
    """`result` with `NextToken` when there is a next page."""
    if token:
        result["NextToken"] = token
    return result


def _encode(last: SortKey, scope: str) -> str:
    raw = json.dumps({"s": scope, "k": list(last)}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode("ascii")


def _decode(token: str, scope: str) -> SortKey:
    try:
        data: Any = json.loads(base64.urlsafe_b64decode(token.encode("ascii")))
        key = data["k"]
        if data["s"] != scope or not isinstance(key, list) or len(key) != 2:
            raise ValueError("token from another listing")
        first, second = key
        if not isinstance(first, int | float | str) or not isinstance(second, str):
            raise ValueError("malformed key")
        return (first, second)
    except (ValueError, KeyError, TypeError, binascii.Error, UnicodeEncodeError) as exc:
        raise validation("The pagination token is invalid.") from exc
