"""Strict JSON: everything `json.loads` lets through that a manifest must not carry."""

from __future__ import annotations

import pytest

from checker import strictjson
from checker.strictjson import MAX_DEPTH, StrictJSONError, loads


def code(data: bytes) -> str:
    with pytest.raises(StrictJSONError) as info:
        loads(data)
    return info.value.code


def test_plain_documents_parse():
    assert loads(b'{"a": [1, "two", true, null, {"b": -3}]}') == {"a": [1, "two", True, None, {"b": -3}]}
    assert loads(b'"x"') == "x"
    assert loads("{\"\u00e9\": \"\u2603\"}".encode()) == {"\u00e9": "\u2603"}
    big = 2**80
    assert loads(str(big).encode()) == big  # integers are arbitrary precision, ranges are checked elsewhere


@pytest.mark.parametrize("text", [b'{"a": 1, "a": 1}', b'{"a": 1, "b": {"c": 1, "c": 2}}',
                                  b'[{"k": 1}, {"k": 2, "k": 3}]', b'{"a": 1, "\\u0061": 2}'])
def test_duplicate_keys_are_refused_wherever_they_are(text):
    assert code(text) == "duplicate_key"


def test_same_key_in_sibling_objects_is_fine():
    assert loads(b'[{"k": 1}, {"k": 2}]') == [{"k": 1}, {"k": 2}]


@pytest.mark.parametrize("text", [b"1.0", b"1e3", b"1E-2", b"-0.5", b'{"n": 3.14}', b"[0.0]", b"1.5e300"])
def test_floats_are_refused(text):
    assert code(text) == "float"


@pytest.mark.parametrize("text", [b"NaN", b"Infinity", b"-Infinity", b'{"n": NaN}', b"[Infinity]"])
def test_nan_and_infinity_are_refused(text):
    assert code(text) == "nan"


def test_nesting_up_to_the_limit_is_allowed_and_one_more_is_refused():
    ok = b"[" * MAX_DEPTH + b"]" * MAX_DEPTH
    assert loads(ok) is not None
    assert code(b"[" * (MAX_DEPTH + 1) + b"]" * (MAX_DEPTH + 1)) == "too_deep"
    assert code(b'{"a": ' * (MAX_DEPTH + 1) + b"1" + b"}" * (MAX_DEPTH + 1)) == "too_deep"


def test_very_deep_nesting_is_refused_before_the_recursive_parser_runs():
    assert code(b"[" * 100_000 + b"]" * 100_000) == "too_deep"
    assert code(b"[" * 100_000) == "too_deep"  # not even well formed: still no RecursionError


def test_brackets_inside_strings_do_not_count_as_nesting():
    text = '{"s": "' + "[{" * 50 + '", "t": "\\"[[[[[[[[[[[["}'
    assert loads(text.encode()) == {"s": "[{" * 50, "t": '"' + "[" * 12}


def test_escaped_backslash_before_a_quote_ends_the_string():
    # "a\\" is a complete string: the brackets after it are real nesting.
    deep = b'["a\\\\", ' + b"[" * MAX_DEPTH + b"]" * MAX_DEPTH + b"]"
    assert code(deep) == "too_deep"


@pytest.mark.parametrize("data", [b"\xff\xfe{}", b'{"a": "\xc3"}', b'"\xed\xa0\x80"'])
def test_non_utf8_is_refused(data):
    assert code(data) == "not_utf8"


@pytest.mark.parametrize("data", [b"", b"{", b'{"a" 1}', b"[1,]", b"{'a': 1}", b'{"a": 1} x', b"01"])
def test_syntax_errors(data):
    assert code(data) == "syntax"


def test_error_carries_code_and_detail():
    with pytest.raises(StrictJSONError) as info:
        loads(b'{"a": 1, "a": 2}')
    assert info.value.code == "duplicate_key" and "'a'" in info.value.detail
    assert str(info.value).startswith("duplicate_key: ")
    assert isinstance(info.value, ValueError)


def test_custom_depth_limit():
    assert strictjson.loads(b"[[1]]", max_depth=2) == [[1]]
    with pytest.raises(StrictJSONError):
        strictjson.loads(b"[[[1]]]", max_depth=2)
