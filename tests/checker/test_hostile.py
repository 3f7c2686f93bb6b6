"""The hostile corpus, end to end: one real checker watching one real mount of one bucket.

Every case lands under its own version (and its own channel, so release
counters of different cases never interact) and must come out with exactly
the expected (outcome, reason). A rejection leaves the landed bytes and a
reason.json under quarantine/ and nothing under incoming/ or releases/. The
last test checks the invariant over everything the module landed: what
devices can see (TUF targets, releases/) is exactly what was accepted.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.support.checker import MODEL, CheckerProcess, Pipeline, metric
from tests.support.mount import Mount
from tests.support.process import wait_for
from tests.support.s3 import remove_bucket

DEADLINE = 8  # pending_deadline of the module's checker, seconds


@dataclass
class Hostile:
    p: Pipeline
    mount: Mount
    checker: CheckerProcess
    accepted: dict[tuple[str, str], str] = field(default_factory=dict)  # (model, version) -> payload sha256


@pytest.fixture(scope="module")
def h(server, s3, passwd_file, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("hostile")
    bucket = f"t-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=bucket)
    p = Pipeline(server, s3, bucket, tmp / "pipeline", passwd_file)
    p.tmp.mkdir()
    (tmp / "mount").mkdir()
    mount = Mount(server, passwd_file, tmp / "mount")
    try:
        p.init()
        mount.start(bucket)
        checker = p.start(mount.path, pending_deadline=str(DEADLINE))
        yield Hostile(p, mount, checker)
    finally:
        for proc in p.processes:
            proc.stop()
        mount.stop()
        remove_bucket(s3, bucket)


# ---------------------------------------------------------------------- helpers
def uploads(h: Hostile, model: str, version: str) -> list[str]:
    """Objects still in the upload area of a package (directory markers made by mkdir do not count)."""
    return [k for k in h.p.keys(f"incoming/{model}/{version}/") if not k.endswith("/")]


def done_verdicts(h: Hostile, package: str) -> list[tuple[str, str, str]]:
    db = h.p.db()
    try:
        return db.query("SELECT outcome, reason, detail FROM verdicts WHERE package = ? AND done = 1 "
                        "ORDER BY decided_at", (package,))
    finally:
        db.close()


def quarantined(h: Hostile, prefix: str, package: str | None = None) -> tuple[str, dict]:
    """(folder, reason.json) of the one quarantine folder under `prefix` (whose package is `package`)."""
    found = []
    for key in h.p.keys(prefix):
        if key.endswith("/reason.json"):
            doc = json.loads(h.p.get(key))
            if package is None or doc["package"] == package:
                found.append((key.removesuffix("reason.json"), doc))
    assert len(found) == 1, found
    return found[0]


def check_quarantine(h: Hostile, folder: str, doc: dict, reason: str, files: dict[str, bytes]) -> None:
    assert (doc["outcome"], doc["reason"]) == ("rejected", reason), doc
    stored = {part["key"].rsplit("/", 1)[-1]: part["stored_as"] for part in doc["parts"]}
    assert set(stored) == set(files), doc["parts"]
    for name, data in files.items():
        assert h.p.get(folder + stored[name]) == data, ascii(name)


def expect_rejected(h: Hostile, version: str, reason: str, files: dict[str, bytes], model: str = MODEL) -> str:
    outcome, got, detail = h.p.verdict(version, model)
    assert (outcome, got) == ("rejected", reason), detail
    folder, doc = quarantined(h, f"quarantine/{model}/{version}/")
    check_quarantine(h, folder, doc, reason, files)
    assert doc["package"] == f"incoming/{model}/{version}/"
    assert uploads(h, model, version) == []
    if (model, version) not in h.accepted:  # (a version released before keeps its one release)
        assert h.p.keys(f"releases/{model}/{version}/") == []
    return detail


def expect_invalid(h: Hostile, package: str, reason: str, files: dict[str, bytes]) -> None:
    """A rejection whose path is too broken to name a quarantine folder: quarantine/_invalid/<id>/."""
    verdicts = wait_for(lambda: done_verdicts(h, package), 60, f"a verdict on {package!r}")
    assert [v[:2] for v in verdicts] == [("rejected", reason)], verdicts
    folder, doc = quarantined(h, "quarantine/_invalid/", package)
    check_quarantine(h, folder, doc, reason, files)
    assert not any(k.startswith(package) for k in h.p.keys("incoming/"))


def expect_accepted(h: Hostile, version: str, payload: bytes, model: str = MODEL) -> None:
    outcome, reason, detail = h.p.verdict(version, model)
    assert (outcome, reason) == ("accepted", "ok"), detail
    digest = hashlib.sha256(payload).hexdigest()
    h.accepted[(model, version)] = digest
    (key,) = h.p.keys(f"releases/{model}/{version}/")
    assert key.split("/")[-1].startswith(digest) and h.p.get(key) == payload
    assert uploads(h, model, version) == []


def edit_manifest(files: dict[str, bytes], text_edit=None, doc_edit=None) -> dict[str, bytes]:
    data = files["manifest.json"]
    if doc_edit is not None:
        doc = json.loads(data)
        doc_edit(doc)
        data = json.dumps(doc).encode()
    if text_edit is not None:
        new = text_edit(data)
        assert new != data, "the edit changed nothing"
        data = new
    return {**files, "manifest.json": data}


def payload(n: int = 4096) -> bytes:
    return os.urandom(n)


# ---------------------------------------------------------------------- arrival
def test_payload_still_being_written_through_the_mount_when_the_manifest_lands(h):
    version, data = "3.0.0", payload(2 << 20)
    files = h.p.package(version, 1, data, channel="writing")
    folder = h.mount.path / "incoming" / MODEL / version
    folder.mkdir(parents=True)
    with open(folder / "fw.bin", "wb") as f:
        f.write(data[: len(data) // 2])
        f.flush()
        shutil.copyfile(_local(h, files, "manifest.json"), folder / "manifest.json")
        wait_for(lambda: metric(h.checker.metrics(), "fsgateway_checker_pending_packages") >= 1, DEADLINE - 2,
                 "the package to be pending")
        assert h.p.verdict_count(version) == 0  # nothing half-written is judged
        f.write(data[len(data) // 2:])
    expect_accepted(h, version, data)


def _local(h: Hostile, files: dict[str, bytes], name: str) -> Path:
    src = h.p.tmp / f"src-{uuid.uuid4().hex[:8]}"
    src.mkdir()
    (src / name).write_bytes(files[name])
    return src / name


def test_truncated_payload_is_rejected_after_the_pending_deadline(h):
    version, data = "4.0.0", payload(64 << 10)
    files = {**h.p.package(version, 1, data, channel="trunc"), "fw.bin": data[:1000]}
    h.p.put(files, version)
    detail = expect_rejected(h, version, "length_mismatch", files)
    assert f"after {DEADLINE} s" in detail


def test_manifest_first_and_payload_never_arriving_is_incomplete(h):
    version = "5.0.0"
    files = h.p.package(version, 1, payload(), channel="never")
    only = {"manifest.json": files["manifest.json"]}
    h.p.put(only, version)
    detail = expect_rejected(h, version, "incomplete", only)
    assert "fw.bin" in detail and f"after {DEADLINE} s" in detail


# ---------------------------------------------------------------------- the manifest itself
def test_duplicate_json_keys(h):
    version = "6.0.0"
    files = edit_manifest(h.p.package(version, 1, payload(), channel="dupkey"),
                          text_edit=lambda t: t.replace(b'"channel": "dupkey"',
                                                        b'"channel": "stable", "channel": "dupkey"'))
    h.p.put(files, version)
    expect_rejected(h, version, "json_duplicate_key", files)


JSON_CASES = {
    "7.0.0": ("json_float", lambda t: t.replace(b'"release_counter": 1', b'"release_counter": 1.0')),
    "7.1.0": ("json_float", lambda t: t.replace(b'"release_counter": 1', b'"release_counter": 1e0')),
    "7.2.0": ("json_nan", lambda t: t.replace(b'"release_counter": 1', b'"release_counter": NaN')),
    "7.3.0": ("json_too_deep", lambda t: t.replace(b'"signatures": [', b'"signatures": [' + b"[" * 9 + b"]" * 9
                                                   + b", ")),
    "7.4.0": ("schema", lambda t: t.replace(b'"channel":', b'"comment": "hi", "channel":')),
    "7.5.0": ("schema", lambda t: t.replace(b'"channel": "json", ', b"")),
    "7.6.0": ("schema", lambda t: t.replace(b'"release_counter": 1', b'"release_counter": "1"')),
    "7.7.0": ("json_syntax", lambda t: t[:-3]),
    "7.8.0": ("signature_missing", lambda t: t[: t.index(b'"signatures"')] + b'"signatures": []}'),
}


@pytest.mark.parametrize("version", sorted(JSON_CASES))
def test_strict_json_and_schema(h, version):
    reason, edit = JSON_CASES[version]
    files = edit_manifest(h.p.package(version, 1, payload(), channel="json"), text_edit=edit)
    h.p.put(files, version)
    expect_rejected(h, version, reason, files)


def test_manifest_over_64_kib(h):
    version = "8.0.0"
    files = edit_manifest(h.p.package(version, 1, payload(), channel="big"),
                          text_edit=lambda t: t[:-1] + b" " * (64 << 10) + b"}")
    h.p.put(files, version)
    expect_rejected(h, version, "manifest_too_large", files)


def test_channel_with_a_trailing_newline_is_not_a_channel(h):
    # "stable\n" would be a second "stable" channel with its own release counters.
    version = "9.9.0"
    files = h.p.package(version, 1, payload(), channel="stable\n")
    h.p.put(files, version)
    expect_rejected(h, version, "schema", files)


# ---------------------------------------------------------------------- signatures and keys
def test_forged_signature(h):
    version = "9.0.0"

    def forge(doc):
        sig = doc["signatures"][0]["sig"]
        doc["signatures"][0]["sig"] = ("1" if sig[0] == "0" else "0") + sig[1:]

    files = edit_manifest(h.p.package(version, 1, payload(), channel="forged"), doc_edit=forge)
    h.p.put(files, version)
    expect_rejected(h, version, "signature_invalid", files)


def test_tampered_signed_field_under_a_valid_signature(h):
    version = "9.1.0"

    def widen(doc):
        doc["signed"]["hw_revisions"] = ["A", "B"]  # the builder signed hardware A only

    files = edit_manifest(h.p.package(version, 1, payload(), channel="tamper"), doc_edit=widen)
    h.p.put(files, version)
    expect_rejected(h, version, "signature_invalid", files)


def test_replayed_signature_of_another_valid_manifest(h):
    version = "10.0.0"
    data = payload()
    other = json.loads(h.p.package("10.0.1", 1, data, channel="replay")["manifest.json"])

    def replay(doc):
        doc["signatures"] = other["signatures"]

    files = edit_manifest(h.p.package(version, 1, data, channel="replay"), doc_edit=replay)
    assert json.loads(files["manifest.json"])["signatures"] == other["signatures"]
    h.p.put(files, version)
    expect_rejected(h, version, "signature_invalid", files)


def test_unknown_key(h):
    version = "11.0.0"
    files = h.p.package(version, 1, payload(), channel="unknownkey", key=h.p.new_key("stranger"))
    h.p.put(files, version)
    expect_rejected(h, version, "key_unknown", files)


def test_revoked_key_is_refused_at_once(h):
    key = h.p.new_key("soon-revoked", models=MODEL)
    data = payload()
    h.p.put(h.p.package("12.0.0", 1, data, channel="revoke", key=key), "12.0.0")
    expect_accepted(h, "12.0.0", data)
    h.p.fw("key", "revoke", key.public_key.keyid)
    files = h.p.package("12.1.0", 2, payload(), channel="revoke", key=key)
    h.p.put(files, "12.1.0")
    expect_rejected(h, "12.1.0", "key_revoked", files)


def test_key_not_authorised_for_the_model(h):
    version = "13.0.0"
    files = h.p.package(version, 1, payload(), channel="notauth", key=h.p.new_key("others", models="other-*"))
    h.p.put(files, version)
    expect_rejected(h, version, "key_not_authorised", files)


# ---------------------------------------------------------------------- version policy
def test_downgrade_of_the_release_counter(h):
    data = payload()
    h.p.put(h.p.package("20.0.0", 10, data, channel="downgrade"), "20.0.0")
    expect_accepted(h, "20.0.0", data)
    for version, counter in (("20.1.0", 9), ("20.2.0", 10)):
        files = h.p.package(version, counter, payload(), channel="downgrade")
        h.p.put(files, version)
        expect_rejected(h, version, "counter_not_increasing", files)


def test_version_order_disagreeing_with_the_counter(h):
    data = payload()
    h.p.put(h.p.package("21.5.0", 1, data, channel="order"), "21.5.0")
    expect_accepted(h, "21.5.0", data)
    files = h.p.package("21.4.0", 2, payload(), channel="order")
    h.p.put(files, "21.4.0")
    expect_rejected(h, "21.4.0", "version_not_increasing", files)


def test_same_version_with_different_bytes(h):
    version, data = "22.0.0", payload()
    h.p.put(h.p.package(version, 1, data, channel="exists"), version)
    expect_accepted(h, version, data)
    files = h.p.package(version, 2, payload(), channel="exists")
    h.p.put(files, version)
    wait_for(lambda: len(done_verdicts(h, f"incoming/{MODEL}/{version}/")) == 2, 60, "the second verdict")
    expect_rejected(h, version, "version_exists", files)
    (key,) = h.p.keys(f"releases/{MODEL}/{version}/")
    assert h.p.get(key) == data  # the first release is untouched


def test_identical_reupload_is_a_duplicate_and_no_second_release(h):
    version, data = "23.0.0", payload()
    files = h.p.package(version, 1, data, channel="dup")
    h.p.put(files, version)
    put_at = time.time()
    expect_accepted(h, version, data)
    # A new landing has a later LastModified (whole seconds in listings) than the first one.
    wait_for(lambda: time.time() > put_at + 1.5, 5, "the next second")
    h.p.put(files, version)
    verdicts = wait_for(lambda: [v[:2] for v in done_verdicts(h, f"incoming/{MODEL}/{version}/")][1:], 60,
                        "the re-upload's verdict")
    assert verdicts == [("duplicate", "duplicate")]
    assert len(h.p.keys(f"releases/{MODEL}/{version}/")) == 1
    assert h.p.keys(f"quarantine/{MODEL}/{version}/") == []
    assert wait_for(lambda: uploads(h, MODEL, version) == [], 30, "the upload area to be cleared")


# ---------------------------------------------------------------------- package against path and registry
def test_version_in_path_disagrees_with_the_manifest(h):
    files = h.p.package("24.0.0", 1, payload(), channel="pathver")
    h.p.put(files, "24.0.1")
    expect_rejected(h, "24.0.1", "path_mismatch", files)


def test_wrong_model_in_path(h):
    files = h.p.package("25.0.0", 1, payload(), channel="pathmodel")
    h.p.put(files, "25.0.0", model="other-a")
    expect_rejected(h, "25.0.0", "path_mismatch", files, model="other-a")


def test_unknown_model(h):
    files = h.p.package("26.0.0", 1, payload(), model="other-zzz", channel="unknownmodel")
    h.p.put(files, "26.0.0", model="other-zzz")
    expect_rejected(h, "26.0.0", "unknown_model", files, model="other-zzz")


def test_hardware_not_registered_for_the_model(h):
    files = h.p.package("27.0.0", 1, payload(), hw=("A", "C"), channel="hw")
    h.p.put(files, "27.0.0")
    expect_rejected(h, "27.0.0", "hw_incompatible", files)


def test_zero_byte_payload(h):
    files = h.p.package("28.0.0", 1, b"", channel="empty")
    h.p.put(files, "28.0.0")
    expect_rejected(h, "28.0.0", "payload_empty", files)


def test_huge_declared_length_is_judged_without_waiting_for_the_payload(h):
    files = h.p.package("29.0.0", 1, payload(), channel="huge", length=1 << 40)
    only = {"manifest.json": files["manifest.json"]}  # no payload at all: no reason to wait for one
    h.p.put(only, "29.0.0")
    detail = expect_rejected(h, "29.0.0", "payload_too_large", only)
    assert "after" not in detail


def test_payload_not_matching_the_declared_sha256(h):
    files = h.p.package("30.0.0", 1, payload(), channel="sha", sha256=hashlib.sha256(b"other").hexdigest())
    h.p.put(files, "30.0.0")
    expect_rejected(h, "30.0.0", "sha256_mismatch", files)
    assert h.p.keys(".fsgateway/checker/") == []  # the staged copy that was hashed is gone too


def test_extra_file_beside_the_package(h):
    files = {**h.p.package("31.0.0", 1, payload(), channel="extra"), "notes.txt": b"hello"}
    h.p.put(files, "31.0.0")
    expect_rejected(h, "31.0.0", "unexpected_file", files)


def test_leftover_temporary_file_of_an_interrupted_copy_is_cleared_with_the_package(h):
    """An rsync killed mid-way leaves `.fw.bin.XXXXXX`; the package completed later clears it too."""
    files = h.p.package("31.5.0", 1, payload(), channel="leftover")
    h.p.put({".fw.bin.Ab12Cd": files["fw.bin"][:100]}, "31.5.0")
    h.p.put(files, "31.5.0")
    expect_accepted(h, "31.5.0", files["fw.bin"])
    wait_for(lambda: not h.p.keys(f"incoming/{MODEL}/31.5.0/"), 30, "the leftover to be removed")


# ---------------------------------------------------------------------- layout and names
def test_stray_file_directly_in_incoming(h):
    key = f"incoming/stray-{uuid.uuid4().hex[:8]}.bin"
    h.p.s3.put_object(Bucket=h.p.bucket, Key=key, Body=b"stray bytes")
    expect_invalid(h, key, "bad_layout", {key.rsplit("/", 1)[-1]: b"stray bytes"})


def test_file_one_level_too_deep(h):
    key = f"incoming/{MODEL}/32.0.0/sub/fw.bin"
    h.p.s3.put_object(Bucket=h.p.bucket, Key=key, Body=b"deep")
    expect_invalid(h, key, "bad_layout", {"fw.bin": b"deep"})


BAD_NAMES = {
    "40.0.0": "fw\x01.bin",  # control character
    "40.1.0": "fw\x7f.bin",  # DEL
    "40.2.0": "fw\n.bin",  # newline
    "40.3.0": "e\u0301.bin",  # not NFC
    "40.4.0": "fw\u202egnp.bin",  # bidi override (format character)
    "40.5.0": "fw\u200b.bin",  # zero-width space
}


@pytest.mark.parametrize("version", sorted(BAD_NAMES))
def test_bad_file_name_rejects_the_whole_package(h, version):
    files = {**h.p.package(version, 1, payload(), channel="names"), BAD_NAMES[version]: b"bad name"}
    h.p.put(files, version)
    expect_rejected(h, version, "bad_name", files)


def test_quarantine_keeps_every_part_when_a_bad_name_meets_a_placeholder_name(h):
    # A file whose name cannot be stored is kept as "part-<index>"; an uploaded file may be called that too.
    version = "40.9.0"
    files = {**h.p.package(version, 1, payload(), channel="names"), "fw\x01.bin": b"evidence", "part-0": b"decoy"}
    h.p.put(files, version)
    expect_rejected(h, version, "bad_name", files)


@pytest.mark.ceph_only
def test_over_long_file_name(h):
    files = {**h.p.package("41.0.0", 1, payload(), channel="long"), "x" * 300: b"long"}
    h.p.put(files, "41.0.0")
    expect_rejected(h, "41.0.0", "bad_name", files)


@pytest.mark.ceph_only
def test_dotdot_component_inside_a_package_path(h):
    key = f"incoming/{MODEL}/42.0.0/../fw.bin"  # escapes the version folder
    h.p.s3.put_object(Bucket=h.p.bucket, Key=key, Body=b"traversal")
    expect_invalid(h, key, "bad_name", {"fw.bin": b"traversal"})
    assert h.p.keys(f"incoming/{MODEL}/fw.bin") == []


@pytest.mark.ceph_only
def test_dotdot_as_the_version(h):
    model = "other-dotdot"
    files = h.p.package("43.0.0", 1, payload(), model=model, channel="dotdot")
    h.p.put(files, "..", model=model)
    expect_invalid(h, f"incoming/{model}/../", "bad_name", files)


@pytest.mark.ceph_only
def test_empty_component(h):
    model = "other-empty"
    h.p.s3.put_object(Bucket=h.p.bucket, Key=f"incoming/{model}//fw.bin", Body=b"empty component")
    expect_invalid(h, f"incoming/{model}//", "bad_name", {"fw.bin": b"empty component"})


def test_non_utf8_file_name_on_the_mount_is_refused(h):
    version, data = "44.0.0", payload()
    folder = h.mount.path / "incoming" / MODEL / version
    folder.mkdir(parents=True)
    with pytest.raises(OSError) as info:
        os.open(os.path.join(os.fsencode(folder), b"fw\xff.bin"), os.O_CREAT | os.O_WRONLY, 0o644)
    assert info.value.errno == errno.EILSEQ
    with pytest.raises(OSError) as info:
        os.mkdir(os.path.join(os.fsencode(folder.parent), b"44.\xff"))
    assert info.value.errno == errno.EILSEQ
    assert uploads(h, MODEL, version) == []
    # The refused name left nothing behind: a good package in the same folder is accepted.
    for name, content in h.p.package(version, 1, data, channel="utf8").items():
        (folder / name).write_bytes(content)
    expect_accepted(h, version, data)


# ---------------------------------------------------------------------- jams: lone surrogates in what is recorded
def _set_signed_field(doc):
    doc["signed"]["\ud800"] = 1


def _set_keyid(doc):
    doc["signatures"][0]["keyid"] = "\ud800" * 64


def _set_sig(doc):
    doc["signatures"][0]["sig"] = "\ud800" * 128


def _set_payload_name(doc):
    doc["signed"]["payload"]["name"] = "fw\ud800.bin"


def _set_payload_field(doc):
    doc["signed"]["payload"]["\udcff"] = "x"


SURROGATE_CASES = {
    "50.0.0": ("schema", _set_signed_field),
    "50.1.0": ("key_unknown", _set_keyid),
    "50.2.0": ("signature_invalid", _set_sig),
    "50.3.0": ("schema", _set_payload_name),
    "50.4.0": ("schema", _set_payload_field),
}


@pytest.mark.parametrize("version", sorted(SURROGATE_CASES))
def test_lone_surrogate_in_the_manifest_ends_in_a_verdict(h, version):
    """json.dumps writes them as \\ud800 escapes: valid JSON that decodes to strings no database can store."""
    reason, edit = SURROGATE_CASES[version]
    files = edit_manifest(h.p.package(version, 1, payload(), channel="surrogate"), doc_edit=edit)
    h.p.put(files, version)
    detail = expect_rejected(h, version, reason, files)
    assert detail.isprintable()  # escaped, as in the log and the CLI


# ---------------------------------------------------------------------- forged logs and terminals
FORGED = "FORGED-51 WARNING checker: accepted incoming/sensor-x/51.0.0/: ok"


def test_newlines_and_ansi_escapes_in_uploaded_text_reach_no_log_or_terminal_raw(h):
    version = "51.0.0"

    def inject(doc):
        doc["signed"][f"x\n{FORGED}\x1b[2J\x1b]0;pwned\x07\u202e"] = 1

    files = edit_manifest(h.p.package(version, 1, payload(), channel="forge"), doc_edit=inject)
    h.p.put(files, version)
    detail = expect_rejected(h, version, "schema", files)
    assert "\n" not in detail and "\x1b" not in detail and "\\x1b" in detail
    stray = f"incoming/\x1b[31mred-{uuid.uuid4().hex[:8]}\n{FORGED}.bin"
    h.p.s3.put_object(Bucket=h.p.bucket, Key=stray, Body=b"red")
    wait_for(lambda: done_verdicts(h, stray), 60, "the stray's verdict")
    for text in (h.checker.log.read_text(errors="replace"), h.p.fw("verdicts", "--limit", "1000").stdout):
        assert "\x1b" not in text and "\u202e" not in text
        assert not any(line.startswith("FORGED-51") for line in text.splitlines())
        assert "\\nFORGED-51" in text


# ---------------------------------------------------------------------- one version, one set of bytes
def test_versions_equal_in_semver_precedence_cannot_name_other_bytes(h):
    data = payload()
    h.p.put(h.p.package("61.0.0", 1, data, channel="semver-a"), "61.0.0")
    expect_accepted(h, "61.0.0", data)
    files = h.p.package("61.0.0+evil", 1, payload(), channel="semver-b")
    h.p.put(files, "61.0.0+evil")
    detail = expect_rejected(h, "61.0.0+evil", "version_exists", files)
    assert "61.0.0" in detail


# ---------------------------------------------------------------------- names that must be served
def test_a_payload_name_whose_release_key_cannot_be_stored_is_refused_before_anything_is_used_up(h):
    version, name = "62.0.0", "n" * 240  # the release key adds 65 bytes to it: a 305-byte component
    files = h.p.package(version, 1, payload(), channel="longname", name=name)
    h.p.put(files, version)
    detail = expect_rejected(h, version, "name_unpublishable", files)
    assert "255" in detail
    data = payload()  # the counter was not used up
    h.p.put(h.p.package("62.1.0", 1, data, channel="longname"), "62.1.0")
    expect_accepted(h, "62.1.0", data)


def test_a_payload_name_with_url_characters_is_published_and_fetched(h, tmp_path):
    version, name, data = "63.0.0", "fw ?#%25&+.bin", payload()
    h.p.put(h.p.package(version, 1, data, channel="stable", name=name), version)
    expect_accepted(h, version, data)
    _, result, _ = h.p.device(tmp_path / "device", check=True)
    assert result["installed"]["version"] == version
    assert result["installed"]["sha256"] == hashlib.sha256(data).hexdigest()


# ---------------------------------------------------------------------- a bucket written behind the checker's back
def test_a_release_planted_through_the_mount_is_replaced_by_the_signed_bytes(h):
    version, data = "64.0.0", payload()
    files = h.p.package(version, 1, data, channel="planted")
    folder = h.mount.path / "releases" / MODEL / version
    folder.mkdir(parents=True)
    (folder / f"{hashlib.sha256(data).hexdigest()}.fw.bin").write_bytes(b"planted before the package landed")
    for marker in ("releases/", f"releases/{MODEL}/", f"releases/{MODEL}/{version}/"):  # left by mkdir
        h.p.s3.delete_object(Bucket=h.p.bucket, Key=marker)
    before = metric(h.checker.metrics(), "fsgateway_checker_tampered_objects_total", where="release")
    h.p.put(files, version)
    expect_accepted(h, version, data)
    assert metric(h.checker.metrics(), "fsgateway_checker_tampered_objects_total", where="release") == before + 1


def test_the_checkers_staging_folder_cannot_be_written_through_the_mount(h):
    for path in (h.mount.path / ".fsgateway" / "checker" / "x", h.mount.path / "incoming" / ".fsgateway"):
        with pytest.raises(OSError) as info:
            path.write_bytes(b"junk")
        assert info.value.errno in (errno.EPERM, errno.EACCES)
    assert ".fsgateway" not in os.listdir(h.mount.path)


# ---------------------------------------------------------------------- the invariant
def test_only_accepted_packages_reach_releases_and_the_metadata(h):
    data = payload()
    h.p.put(h.p.package("99.0.0", 1, data, channel="final"), "99.0.0")
    expect_accepted(h, "99.0.0", data)
    bad = h.p.package("99.1.0", 2, payload(), channel="final", sha256="0" * 64)
    h.p.put(bad, "99.1.0")
    expect_rejected(h, "99.1.0", "sha256_mismatch", bad)

    def published() -> dict | None:
        targets = h.p.targets()
        return targets if f"{MODEL}/99.0.0/fw.bin" in targets else None

    targets = wait_for(published, 30, "the last accepted release in the metadata")
    accepted = h.accepted
    models = {m for m, _ in accepted}
    for path, target in targets.items():
        parts = path.split("/")
        if parts[1:] == ["index.json"]:
            assert parts[0] in models, path
            continue
        model, version, _ = parts
        assert (model, version) in accepted, path
        assert target["hashes"]["sha256"] == accepted[(model, version)], path
    assert {(t["custom"]["model"], t["custom"]["version"]) for t in targets.values() if "custom" in t} == set(accepted)

    for key in h.p.keys("releases/"):
        parts = key.split("/")
        if len(parts) == 3:  # releases/<model>/<sha>.index.json
            index = json.loads(h.p.get(key))
            assert hashlib.sha256(h.p.get(key)).hexdigest() == parts[2].split(".")[0]
            for entry in index["releases"]:
                assert (index["model"], entry["version"]) in accepted, (key, entry)
            continue
        _, model, version, name = parts
        assert (model, version) in accepted, key
        assert name.startswith(accepted[(model, version)] + "."), key
        assert hashlib.sha256(h.p.get(key)).hexdigest() == accepted[(model, version)], key

    db = h.p.db()
    try:
        released = {(m, v) for m, v in db.query("SELECT model, version FROM releases")}
        rejected = db.query("SELECT package FROM verdicts WHERE outcome = 'rejected'")
    finally:
        db.close()
    assert released == set(accepted)
    assert rejected  # the module did land hostile packages
    assert h.p.keys("incoming/") == [k for k in h.p.keys("incoming/") if k.endswith("/")]  # nothing left over
    assert h.p.keys(".fsgateway/checker/") == []  # no staged copy left behind
