"""SemVer 2.0.0 parsing and precedence (the examples of semver.org section 11)."""

from __future__ import annotations

import itertools

import pytest

from checker.semver import Version


def v(text: str) -> Version:
    return Version.parse(text)


def test_parse_fields():
    assert v("1.2.3") == Version(1, 2, 3)
    x = v("1.2.3-rc.1+build.5")
    assert (x.major, x.minor, x.patch, x.pre, x.build) == (1, 2, 3, ("rc", "1"), "build.5")
    assert v("0.0.0").pre == () and v("0.0.0").build == ""
    assert v("10.20.30-0A.is.legal").pre == ("0A", "is", "legal")


def test_precedence_chain_from_the_specification():
    chain = ["1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-alpha.beta", "1.0.0-beta", "1.0.0-beta.2", "1.0.0-beta.11",
             "1.0.0-rc.1", "1.0.0", "1.0.1", "1.1.0", "2.0.0", "2.1.0", "2.1.1", "10.0.0"]
    parsed = [v(t) for t in chain]
    for a, b in itertools.pairwise(parsed):
        assert a < b and b > a and a != b
    assert sorted(reversed(parsed)) == parsed


def test_numeric_identifiers_compare_numerically_and_below_alphanumeric():
    assert v("1.0.0-2") < v("1.0.0-10")
    assert v("1.0.0-99") < v("1.0.0-a")
    assert v("1.0.0-alpha.9") < v("1.0.0-alpha.10")
    assert v("1.0.0-A") < v("1.0.0-a")  # ASCII order


def test_build_metadata_is_ignored_for_precedence_and_equality():
    assert v("1.0.0+a") == v("1.0.0+b") == v("1.0.0")
    assert hash(v("1.0.0+a")) == hash(v("1.0.0"))
    assert not v("1.0.0+zzz") > v("1.0.0")
    assert v("1.0.0-rc.1+x") < v("1.0.0")


def test_comparisons_with_other_types():
    assert v("1.0.0") != "1.0.0"
    with pytest.raises(TypeError):
        _ = v("1.0.0") < "2.0.0"


@pytest.mark.parametrize("text", [
    "", "1", "1.2", "1.2.3.4", "01.2.3", "1.02.3", "1.2.03", "v1.2.3", "1.2.3-", "1.2.3+", "1.2.3-01",
    "1.2.3-a..b", "1.2.3-a_b", "1.2.3+a_b", " 1.2.3", "1.2.3 ", "-1.2.3", "1.2.3-alpha.01", "1.2.3+a..b",
    "1." * 100 + "1",
])
def test_invalid_versions_are_refused(text):
    with pytest.raises(ValueError):
        Version.parse(text)


@pytest.mark.parametrize("text", ["1.2.3\n", "1.2.3-rc.1\n", "1.2.3+b\n"])
def test_trailing_newline_is_not_a_version(text):
    # Version strings become path components and TUF target paths: "1.2.3\n" is not SemVer.
    with pytest.raises(ValueError):
        Version.parse(text)


@pytest.mark.parametrize("text", ["1.0.1\u0663", "1\u0661.0.0", "1.0.0-1\u0661", "1.0.0-rc.1\u0661",
                                  "1.0.0-\u0661a"])
def test_non_ascii_digits_are_not_semver(text):
    # SemVer digits are ASCII 0-9; Arabic-Indic digits would parse as numbers with `\d` and `int()`.
    with pytest.raises(ValueError):
        Version.parse(text)


def test_over_long_version_is_refused():
    long_ok = "1.0.0-" + "a" * 122
    assert len(long_ok) == 128 and v(long_ok).pre == ("a" * 122,)
    with pytest.raises(ValueError):
        Version.parse(long_ok + "a")
