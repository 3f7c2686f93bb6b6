"""Strict JSON for manifests: what a hostile uploader can smuggle past `json.loads` is refused.

Python's parser accepts duplicate keys (the last wins, so two readers may
disagree on what was signed), NaN/Infinity, floats (no canonical form) and
unbounded nesting. Each is an error here, with a machine-readable code.
"""

from __future__ import annotations

import json
from typing import Any

MAX_DEPTH = 8


class StrictJSONError(ValueError):
    def __init__(self, code: str, detail: str) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise StrictJSONError("duplicate_key", f"key {key!r} appears twice")
        out[key] = value
    return out


def _no_float(text: str) -> float:
    raise StrictJSONError("float", f"number {text} is not an integer")


def _no_constant(text: str) -> float:
    raise StrictJSONError("nan", f"{text} is not JSON")


def loads(data: bytes, max_depth: int = MAX_DEPTH) -> Any:
    """Parse UTF-8 JSON bytes strictly; StrictJSONError(code) on anything doubtful."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise StrictJSONError("not_utf8", str(exc)) from exc
    # Reject deep nesting before the recursive parser sees it (brackets outside strings).
    depth = level = 0
    in_string = escaped = False
    for ch in text:
        if in_string:
            escaped, in_string = (False, True) if escaped else (ch == "\\", ch != '"')
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            level += 1
            depth = max(depth, level)
        elif ch in "]}":
            level -= 1
    if depth > max_depth:
        raise StrictJSONError("too_deep", f"nesting depth {depth} > {max_depth}")
    try:
        value = json.loads(text, object_pairs_hook=_no_duplicates, parse_float=_no_float,
                           parse_constant=_no_constant)
    except StrictJSONError:
        raise
    except (ValueError, RecursionError) as exc:
        raise StrictJSONError("syntax", str(exc)) from exc
    return value
