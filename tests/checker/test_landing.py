"""Grouping listed objects into packages, and a package's identity and timing. Pure."""

from __future__ import annotations

from checker.landing import Package, Part, group

IN = "pre/incoming/"


def part(rel: str, size: int = 1, etag: str = '"e"', at: float = 100.0) -> Part:
    return Part(IN + rel, size, etag, at)


def test_parts_are_grouped_by_model_and_version():
    objs = [part("m/1.0.0/fw.bin", 10, at=5), part("m/1.0.0/manifest.json", 2, at=7), part("m/2.0.0/fw.bin"),
            part("n/1.0.0/manifest.json")]
    packages, strays = group(objs, IN)
    assert strays == []
    by = {p.prefix: p for p in packages}
    assert set(by) == {IN + "m/1.0.0/", IN + "m/2.0.0/", IN + "n/1.0.0/"}
    p = by[IN + "m/1.0.0/"]
    assert (p.model, p.version, sorted(p.parts)) == ("m", "1.0.0", ["fw.bin", "manifest.json"])
    assert p.manifest is not None and p.manifest.size == 2 and p.problem is None
    assert by[IN + "m/2.0.0/"].manifest is None
    assert (p.first_seen(), p.landed_at()) == (5, 7)


def test_hidden_temporaries_are_not_parts_but_count_for_first_seen():
    objs = [part("m/1/.fw.bin.Ab12Cd", at=3), part("m/1/manifest.json", at=9)]
    (p,), _ = group(objs, IN)
    assert list(p.parts) == ["manifest.json"] and [h.key for h in p.hidden] == [IN + "m/1/.fw.bin.Ab12Cd"]
    assert p.first_seen() == 3 and p.landed_at() == 9


def test_directory_markers_are_ignored():
    packages, strays = group([part("m/"), part("m/1.0.0/"), Part(IN, 0, "", 0)], IN)
    assert packages == [] and strays == []


def test_strays_outside_a_package_folder():
    objs = [part("stray.bin"), part("m/fw.bin"), part("m/1/sub/fw.bin"), part("m/1/../fw.bin")]
    packages, strays = group(objs, IN)
    assert packages == []
    reasons = {p.key[len(IN):]: problem.reason for p, problem in strays}
    assert reasons == {"stray.bin": "bad_layout", "m/fw.bin": "bad_layout", "m/1/sub/fw.bin": "bad_layout",
                       "m/1/../fw.bin": "bad_name"}


def test_a_bad_name_marks_the_whole_package():
    objs = [part("m/1/fw.bin"), part("m/1/manifest.json"), part("m/1/notes\x01.txt")]
    (p,), strays = group(objs, IN)
    assert strays == [] and p.problem is not None and p.problem.reason == "bad_name"
    (q,), _ = group([part("m/../manifest.json")], IN)
    assert q.version == ".." and q.problem.reason == "bad_name"
    (r,), _ = group([part("m/1/e\u0301.bin")], IN)
    assert r.problem.reason == "bad_name"


def test_package_id_is_stable_and_changes_with_any_landing_detail():
    base = [part("m/1/fw.bin", 10, '"a"', 5.0), part("m/1/manifest.json", 2, '"b"', 6.0)]
    (p,), _ = group(base, IN)
    (p2,), _ = group(list(reversed(base)), IN)
    assert p.package_id() == p2.package_id() and len(p.package_id()) == 32
    variants = [
        [part("m/1/fw.bin", 11, '"a"', 5.0), base[1]],
        [part("m/1/fw.bin", 10, '"c"', 5.0), base[1]],
        [part("m/1/fw.bin", 10, '"a"', 8.0), base[1]],
        [base[0]],
        [*base, part("m/1/extra", 1, '"x"', 5.0)],
        [Part(IN + "m/2/fw.bin", 10, '"a"', 5.0), Part(IN + "m/2/manifest.json", 2, '"b"', 6.0)],
    ]
    ids = {p.package_id()}
    for objs in variants:
        (q,), _ = group(objs, IN)
        ids.add(q.package_id())
    assert len(ids) == len(variants) + 1


def test_package_id_of_undecodable_names_does_not_raise():
    (p,), _ = group([part("m/1/fw\udcff")], IN)
    assert len(p.package_id()) == 32


def test_empty_package_times():
    p = Package(IN + "m/1/", "m", "1")
    assert p.first_seen() == 0.0 and p.landed_at() == 0.0 and p.manifest is None
