"""Unit tests of key-to-name mapping (pure logic)."""

from __future__ import annotations

from fsgateway.formats.keys import name_problem, split_listing
from fsgateway.store.client import ListEntry


def entry(key: str, size: int = 0) -> ListEntry:
    return ListEntry(key, size, "", None)


def test_name_problems():
    assert name_problem(b"ok.bin") is None
    assert name_problem(b"") == "empty_component"
    assert name_problem(b"..") == "dot_component"
    assert name_problem(b"a\0b") == "nul_byte"
    assert name_problem(b"x" * 256) == "name_too_long"
    assert name_problem("é".encode() * 127) is None  # 254 bytes
    assert name_problem(b"\xff\xfe") == "invalid_utf8"


def test_split_listing_dirs_shadow_files_and_bad_names_are_reported():
    objs = [entry("p/"), entry("p/a", 1), entry("p/x", 2), entry("p/" + "n" * 300, 3), entry("p/bad\udcff", 4)]
    listing = split_listing("p/", objs, ["p/x/", "p//", "p/d/"], hide_reserved=False)
    assert set(listing.files) == {"a"}
    assert listing.dirs == {"x", "d"}
    reasons = sorted(r.reason for r in listing.rejected)
    assert reasons == ["empty_component", "invalid_utf8", "name_too_long", "shadowed_by_directory"]


def test_reserved_prefix_hidden_only_when_asked():
    assert split_listing("", [], [".fsgateway/", "a/"], hide_reserved=True).dirs == {"a"}
    assert split_listing("", [], [".fsgateway/", "a/"], hide_reserved=False).dirs == {"a", ".fsgateway"}


def test_reserved_folder_hidden_at_any_depth():
    # A checker with prefix fw/ keeps its staging copies in fw/.fsgateway/checker/.
    assert split_listing("fw/", [], ["fw/.fsgateway/", "fw/incoming/"], hide_reserved=True).dirs == {"incoming"}
    marker = [entry("fw/.fsgateway/")]
    assert split_listing("fw/", marker, [], hide_reserved=True).dirs == set()
