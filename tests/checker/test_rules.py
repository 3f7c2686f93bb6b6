"""Name rules, package rules against the model registry, and the version policy."""

from __future__ import annotations

import dataclasses

import pytest

from checker.manifest import Manifest, Signature
from checker.rules import (
    MAX_KEY_BYTES,
    MAX_NAME_BYTES,
    ModelPolicy,
    Release,
    check_key,
    check_package,
    name_problem,
    version_decision,
)

POLICY = ModelPolicy("sensor-x", ("A", "B"), 1000)


def man(**kw) -> Manifest:
    base = dict(model="sensor-x", hw_revisions=("A",), version="1.2.0", release_counter=5, channel="stable",
                payload_name="fw.bin", payload_length=10, payload_sha256="ab" * 32,
                signatures=(Signature("k", "s"),), signed_bytes=b"{}")
    base.update(kw)
    return Manifest(**base)


def rel(**kw) -> Release:
    base = dict(model="sensor-x", channel="stable", version="1.1.0", release_counter=4, sha256="cd" * 32,
                length=10, name="fw.bin", hw_revisions=("A",))
    base.update(kw)
    return Release(**base)


@pytest.mark.parametrize("name", ["fw.bin", "1.0.0", "sensor-x", "caf\u00e9", "\u96fb\u5b50", "a b", "-x", ".hidden",
                                  "x" * MAX_NAME_BYTES, "\u00e9" * (MAX_NAME_BYTES // 2)])
def test_good_names(name):
    assert name_problem(name) is None


@pytest.mark.parametrize("name, words", [
    ("", "empty"), (".", "'.'"), ("..", "'..'"),
    ("fw\x00.bin", "control"), ("fw\x01", "control"), ("fw\n", "control"), ("fw\x7f", "control"),
    ("fw\u0085", "control"), ("fw\u200b", "format"), ("\u202eevil", "format"), ("\ufefffw", "format"),
    ("a\u2028b", "control"), ("a\u2029b", "control"),
    ("cafe\u0301", "NFC"), ("\u212b", "NFC"),
    ("fw\udcff.bin", "UTF-8"),
    ("x" * (MAX_NAME_BYTES + 1), "longer"), ("\u00e9" * (MAX_NAME_BYTES // 2 + 1), "longer"),
])
def test_bad_names(name, words):
    why = name_problem(name)
    assert why is not None and words in why


def test_check_key_layout_and_names():
    assert check_key("sensor-x/1.0.0/fw.bin") is None
    assert check_key("sensor-x/1.0.0/manifest.json") is None
    assert check_key("stray.bin").reason == "bad_layout"
    assert check_key("sensor-x/fw.bin").reason == "bad_layout"
    assert check_key("sensor-x/1.0.0/sub/fw.bin").reason == "bad_layout"
    for bad in ("sensor-x/../fw.bin", "../sensor-x/1.0.0", "sensor-x//fw.bin", "/sensor-x/1.0.0/fw.bin",
                "sensor-x/1.0.0/fw\x1b.bin", "sensor-x/1.0.0/e\u0301", "sensor-x/1.0.0/.", "sensor-x/1.0.0/",
                "sensor-x/1.0.0/fw\udcc3.bin", "sensor-x/1.0.0/../../../releases/x"):
        p = check_key(bad)
        assert p is not None and p.reason == "bad_name", bad


def test_over_long_keys():
    long_name = "sensor-x/1.0.0/" + "x" * MAX_NAME_BYTES
    assert check_key(long_name) is None
    deep = "/".join(["d" * 200] * 6)
    assert len(deep) > MAX_KEY_BYTES
    p = check_key(deep)
    assert p.reason == "bad_name" and str(MAX_KEY_BYTES) in p.detail


def test_bad_name_detail_is_ascii_and_bounded():
    p = check_key("sensor-x/1.0.0/\u202e" + "\x01" * 500)
    assert p.reason == "bad_name" and p.detail.isascii() and len(p.detail) < 200


def test_check_package_order_and_reasons():
    assert check_package(man(), "sensor-x", "1.2.0", POLICY) is None
    assert check_package(man(), "sensor-y", "1.2.0", POLICY).reason == "path_mismatch"
    assert check_package(man(), "sensor-x", "1.2.1", POLICY).reason == "path_mismatch"
    assert check_package(man(), "sensor-x", "1.2.0", None).reason == "unknown_model"
    assert check_package(man(hw_revisions=("A", "C")), "sensor-x", "1.2.0", POLICY).reason == "hw_incompatible"
    assert check_package(man(payload_length=0), "sensor-x", "1.2.0", POLICY).reason == "payload_empty"
    assert check_package(man(payload_length=1000), "sensor-x", "1.2.0", POLICY) is None
    assert check_package(man(payload_length=1001), "sensor-x", "1.2.0", POLICY).reason == "payload_too_large"
    # a wrong path is reported before anything about the model
    assert check_package(man(hw_revisions=("Z",)), "other", "1.2.0", None).reason == "path_mismatch"


def test_first_release_of_a_channel_is_free():
    assert version_decision(man(release_counter=0, version="0.0.1"), None, None) is None


def test_version_policy():
    latest = rel()
    assert version_decision(man(), None, latest) is None
    assert version_decision(man(release_counter=4), None, latest).reason == "counter_not_increasing"
    assert version_decision(man(release_counter=3, version="9.0.0"), None, latest).reason == "counter_not_increasing"
    assert version_decision(man(version="1.1.0"), None, latest).reason == "version_not_increasing"
    assert version_decision(man(version="1.0.9"), None, latest).reason == "version_not_increasing"
    assert version_decision(man(version="1.1.0+build2"), None, latest).reason == "version_not_increasing"
    assert version_decision(man(version="1.1.0-rc.1"), None, latest).reason == "version_not_increasing"
    assert version_decision(man(version="1.1.1-rc.1"), None, latest) is None


def test_same_version_identical_is_duplicate_and_different_is_version_exists():
    m = man()
    same = rel(version="1.2.0", release_counter=5, sha256=m.payload_sha256, length=10)
    assert version_decision(m, same, same).reason == "duplicate"
    for change in ({"sha256": "ee" * 32}, {"length": 11}, {"release_counter": 6}, {"channel": "beta"},
                   {"name": "other.bin"}):
        other = dataclasses.replace(same, **change)
        assert version_decision(m, other, other).reason == "version_exists", change
    # the same version is taken whatever the channel: a re-upload never becomes a second release
    assert version_decision(man(channel="beta"), same, None).reason == "version_exists"


def test_a_version_equal_in_precedence_to_a_released_one_is_refused():
    """61.0.0+evil on another channel would name other bytes for what devices compare as 61.0.0."""
    released = Release("sensor-x", "stable", "61.0.0", 5, "ab" * 32, 10, "fw.bin", ("A",))
    problem = version_decision(man(version="61.0.0+evil", channel="beta", payload_sha256="cd" * 32), released, None)
    assert problem is not None and problem.reason == "version_exists"
    assert "61.0.0" in problem.detail


def test_release_keys_that_cannot_be_stored_or_served():
    from checker.rules import key_problem, release_of
    from checker.tufrepo import release_key

    assert key_problem(release_key(release_of(man(payload_name="n" * 190)))) is None
    problem = key_problem(release_key(release_of(man(payload_name="n" * 191))))  # 65 + 191 > 255
    assert problem is not None and problem.reason == "name_unpublishable"
    problem = key_problem("p/" * 500 + release_key(release_of(man())))
    assert problem is not None and "1024" in problem.detail
