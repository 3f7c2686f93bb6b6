"""The manifest schema: strict JSON, exact fields, and the canonical bytes the signatures cover."""

from __future__ import annotations

import copy
import json

import pytest

from checker import manifest
from checker.manifest import MAX_MANIFEST_BYTES, ManifestError, canonical, parse, signed_document

SHA = "ab" * 32
SIG = {"keyid": "cd" * 32, "sig": "ef" * 64}


def doc(**signed_overrides) -> dict:
    signed = signed_document("sensor-x", ["B", "A"], "1.2.3", 7, "stable", "fw.bin", 100, SHA)
    signed.update(signed_overrides)
    return {"signed": signed, "signatures": [dict(SIG)]}


def raw(d: dict) -> bytes:
    return json.dumps(d).encode()


def reason(data: bytes) -> str:
    with pytest.raises(ManifestError) as info:
        parse(data)
    return info.value.reason


def test_a_good_manifest_parses_into_its_fields():
    m = parse(raw(doc()))
    assert (m.model, m.version, m.release_counter, m.channel) == ("sensor-x", "1.2.3", 7, "stable")
    assert m.hw_revisions == ("A", "B")  # signed_document sorts them
    assert (m.payload_name, m.payload_length, m.payload_sha256) == ("fw.bin", 100, SHA)
    assert m.signatures == (manifest.Signature(SIG["keyid"], SIG["sig"]),)


def test_signed_bytes_are_the_canonical_form_whatever_the_file_layout():
    d = doc()
    pretty = json.dumps(d, indent=4, sort_keys=False).encode()
    compact = json.dumps(d, separators=(",", ":"), sort_keys=True).encode()
    assert parse(pretty).signed_bytes == parse(compact).signed_bytes == canonical(d["signed"])
    text = parse(compact).signed_bytes.decode()
    assert " " not in text.replace("fsgateway-firmware", "") and text.index('"_type"') < text.index('"channel"')


def test_canonical_is_olpc_canonical_json():
    assert canonical({"b": 1, "a": [True, None, "x\"y"]}) == b'{"a":[true,null,"x\\"y"],"b":1}'


@pytest.mark.parametrize("mutate, expected", [
    (lambda t: t.replace(b'"model"', b'"model": "other", "model"', 1), "json_duplicate_key"),
    (lambda t: t.replace(b'"release_counter": 7', b'"release_counter": 7.0'), "json_float"),
    (lambda t: t.replace(b'"release_counter": 7', b'"release_counter": 7e0'), "json_float"),
    (lambda t: t.replace(b'"release_counter": 7', b'"release_counter": NaN'), "json_nan"),
    (lambda t: t.replace(b'"release_counter": 7', b'"release_counter": -Infinity'), "json_nan"),
    (lambda t: t.replace(b'"signatures": [', b'"signatures": [[[[[[[[[[]]]]]]]]], ', 1), "json_too_deep"),
    (lambda t: t[:-1], "json_syntax"),
    (lambda t: b"\xef\xbb\xbf" + t, "json_syntax"),  # a BOM is not JSON
    (lambda t: t.replace(b'"fw.bin"', b'"fw\xff.bin"'), "json_not_utf8"),
])
def test_strict_json_problems_have_their_own_reasons(mutate, expected):
    assert reason(mutate(raw(doc()))) == expected


def test_manifest_over_64_kib_is_refused_before_parsing():
    d = doc()
    text = raw(d)
    padded = text[:-1] + b" " * (MAX_MANIFEST_BYTES - len(text)) + b"}"
    assert len(padded) == MAX_MANIFEST_BYTES and parse(padded).model == "sensor-x"
    assert reason(padded + b" ") == "manifest_too_large"
    assert reason(b"{" * (MAX_MANIFEST_BYTES + 1)) == "manifest_too_large"


def _drop(path: list[str]):
    def f(d: dict) -> dict:
        target = d
        for p in path[:-1]:
            target = target[p]
        del target[path[-1]]
        return d
    return f


def _set(path: list[str], value):
    def f(d: dict) -> dict:
        target = d
        for p in path[:-1]:
            target = target[p]
        target[path[-1]] = value
        return d
    return f


SCHEMA_CASES = {
    "missing signed": _drop(["signed"]),
    "missing signatures": _drop(["signatures"]),
    "missing model": _drop(["signed", "model"]),
    "missing payload sha256": _drop(["signed", "payload", "sha256"]),
    "unknown top field": _set(["extra"], 1),
    "unknown signed field": _set(["signed", "note"], "hi"),
    "unknown payload field": _set(["signed", "payload", "url"], "http://x"),
    "signed not an object": _set(["signed"], []),
    "top not an object": lambda d: [d],
    "counter is a string": _set(["signed", "release_counter"], "7"),
    "counter is a bool": _set(["signed", "release_counter"], True),
    "length is a bool": _set(["signed", "payload", "length"], False),
    "negative counter": _set(["signed", "release_counter"], -1),
    "counter too big": _set(["signed", "release_counter"], 2**63),
    "negative length": _set(["signed", "payload", "length"], -5),
    "length too big": _set(["signed", "payload", "length"], 2**63),
    "wrong type": _set(["signed", "_type"], "tuf-targets"),
    "wrong spec": _set(["signed", "spec_version"], 2),
    "no hw": _set(["signed", "hw_revisions"], []),
    "hw not strings": _set(["signed", "hw_revisions"], [1]),
    "hw duplicated": _set(["signed", "hw_revisions"], ["A", "A"]),
    "too many hw": _set(["signed", "hw_revisions"], [f"h{i}" for i in range(65)]),
    "hw with slash": _set(["signed", "hw_revisions"], ["A/B"]),
    "model with slash": _set(["signed", "model"], "a/b"),
    "model dotdot": _set(["signed", "model"], ".."),
    "model empty": _set(["signed", "model"], ""),
    "model starts with dash": _set(["signed", "model"], "-x"),
    "model too long": _set(["signed", "model"], "m" * 65),
    "model non-ascii": _set(["signed", "model"], "sens\u00f6r"),
    "channel with space": _set(["signed", "channel"], "beta 1"),
    "channel trailing newline": _set(["signed", "channel"], "stable\n"),
    "model trailing newline": _set(["signed", "model"], "sensor-x\n"),
    "hw trailing newline": _set(["signed", "hw_revisions"], ["A\n"]),
    "version not semver": _set(["signed", "version"], "1.2"),
    "version v-prefixed": _set(["signed", "version"], "v1.2.3"),
    "version trailing newline": _set(["signed", "version"], "1.2.3\n"),
    "sha256 upper case": _set(["signed", "payload", "sha256"], "AB" * 32),
    "sha256 short": _set(["signed", "payload", "sha256"], "ab" * 31),
    "sha256 trailing newline": _set(["signed", "payload", "sha256"], "ab" * 32 + "\n"),
    "name with slash": _set(["signed", "payload", "name"], "dir/fw.bin"),
    "name dotdot": _set(["signed", "payload", "name"], ".."),
    "name hidden": _set(["signed", "payload", "name"], ".fw.bin"),
    "name is the manifest": _set(["signed", "payload", "name"], "manifest.json"),
    "name with newline": _set(["signed", "payload", "name"], "fw\n.bin"),
    "name with control": _set(["signed", "payload", "name"], "fw\x01.bin"),
    "signature missing keyid": lambda d: {**d, "signatures": [{"sig": "00"}]},
    "signature extra field": lambda d: {**d, "signatures": [{**SIG, "method": "ed25519"}]},
    "signature not an object": lambda d: {**d, "signatures": ["abc"]},
}


@pytest.mark.parametrize("case", sorted(SCHEMA_CASES))
def test_schema_violations(case):
    data = raw(SCHEMA_CASES[case](copy.deepcopy(doc())))
    assert reason(data) == "schema"


@pytest.mark.parametrize("sigs", [[], [dict(SIG)] * 17])
def test_one_to_sixteen_signatures(sigs):
    d = doc()
    d["signatures"] = sigs
    assert reason(raw(d)) == "signature_missing"
    d["signatures"] = [dict(SIG)] * 16
    assert len(parse(raw(d)).signatures) == 16


def test_boundaries_that_are_allowed():
    d = doc(release_counter=2**63 - 1, model="m" * 64, channel="0", hw_revisions=["A.b_c-1"], version="0.0.0-x+y")
    d["signed"]["payload"]["length"] = 0  # the schema allows 0; the rules refuse an empty payload
    m = parse(raw(d))
    assert (m.release_counter, m.model, m.payload_length) == (2**63 - 1, "m" * 64, 0)


def test_error_is_a_value_error_with_reason_and_detail():
    with pytest.raises(ManifestError) as info:
        parse(raw(doc(model="a/b")))
    assert isinstance(info.value, ValueError)
    assert info.value.reason == "schema" and "a/b" in info.value.detail
