"""Ed25519 keys, keyids and the signature check against the authorisation table."""

from __future__ import annotations

import json
import os
import stat

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ec import SECP256R1, generate_private_key
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from securesystemslib.signer import CryptoSigner, SSlibKey

from checker import manifest, signing
from checker.manifest import ManifestError
from checker.signing import AuthorisedKey, KeyFileError


def signer() -> CryptoSigner:
    private = Ed25519PrivateKey.generate()
    return CryptoSigner(private, SSlibKey.from_crypto(private.public_key()))


def package(*signers: CryptoSigner, model: str = "sensor-x", **overrides) -> manifest.Manifest:
    signed = manifest.signed_document(model, ["A"], "1.0.0", 1, "stable", "fw.bin", 10, "ab" * 32)
    signed.update(overrides)
    sigs = [signing.sign(manifest.canonical(signed), s) for s in signers]
    return manifest.parse(json.dumps({"signed": signed, "signatures": sigs}).encode())


def table(*entries: tuple[CryptoSigner, tuple[str, ...], bool]) -> dict[str, AuthorisedKey]:
    return {s.public_key.keyid: AuthorisedKey(s.public_key, models, revoked) for s, models, revoked in entries}


def reason(m: manifest.Manifest, keys: dict[str, AuthorisedKey]) -> str:
    with pytest.raises(ManifestError) as info:
        signing.verify(m, keys)
    return info.value.reason


def test_keyid_is_sha256_of_the_canonical_public_key():
    s = signer()
    material = {"keytype": "ed25519", "scheme": "ed25519", "keyval": {"public": s.public_key.keyval["public"]}}
    assert signing.keyid(material) == s.public_key.keyid
    assert signing.public_key_from_json(json.dumps(s.public_key.to_dict())).keyid == s.public_key.keyid


def test_good_signature_by_an_authorised_key():
    s = signer()
    assert signing.verify(package(s), table((s, ("sensor-x",), False))) == s.public_key.keyid
    assert signing.verify(package(s), table((s, ("sensor-*",), False))) == s.public_key.keyid
    assert signing.verify(package(s), table((s, ("other", "*"), False))) == s.public_key.keyid


def test_key_unknown_revoked_not_authorised():
    s = signer()
    m = package(s)
    assert reason(m, {}) == "key_unknown"
    assert reason(m, table((signer(), ("*",), False))) == "key_unknown"
    assert reason(m, table((s, ("*",), True))) == "key_revoked"
    assert reason(m, table((s, ("other-*",), False))) == "key_not_authorised"
    assert reason(m, table((s, (), False))) == "key_not_authorised"
    assert reason(m, table((s, ("SENSOR-X",), False))) == "key_not_authorised"  # case-sensitive globs


def test_forged_signature():
    s = signer()
    good = package(s)
    sig = good.signatures[0]
    flipped = ("0" if sig.sig[0] != "0" else "1") + sig.sig[1:]
    forged = manifest.Manifest(**{**good.__dict__, "signatures": (manifest.Signature(sig.keyid, flipped),)})
    assert reason(forged, table((s, ("*",), False))) == "signature_invalid"
    junk = manifest.Manifest(**{**good.__dict__, "signatures": (manifest.Signature(sig.keyid, "zz"),)})
    assert reason(junk, table((s, ("*",), False))) == "signature_invalid"


def test_replayed_signature_of_another_manifest():
    s = signer()
    other = package(s, release_counter=2)
    m = package(s)
    replayed = manifest.Manifest(**{**m.__dict__, "signatures": other.signatures})
    assert reason(replayed, table((s, ("*",), False))) == "signature_invalid"


def test_signature_covers_every_signed_field():
    s = signer()
    m = package(s)
    for field_name, value in (("version", "1.0.1"), ("channel", "beta"), ("hw_revisions", ["A", "B"])):
        signed = json.loads(m.signed_bytes)
        signed[field_name] = value
        tampered = manifest.parse(json.dumps({"signed": signed, "signatures": [
            {"keyid": m.signatures[0].keyid, "sig": m.signatures[0].sig}]}).encode())
        assert reason(tampered, table((s, ("*",), False))) == "signature_invalid", field_name


def test_one_good_signature_suffices_and_the_worst_problem_is_reported():
    good, stranger, revoked, forged = signer(), signer(), signer(), signer()
    keys = table((good, ("*",), False), (revoked, ("*",), True), (forged, ("*",), False))
    m = package(stranger, revoked, good)
    assert signing.verify(m, keys) == good.public_key.keyid
    bad = package(stranger, revoked)
    assert reason(bad, keys) == "key_revoked"
    m2 = package(forged, stranger)
    sigs = (manifest.Signature(m2.signatures[0].keyid, package(forged, release_counter=9).signatures[0].sig),
            m2.signatures[1])
    assert reason(manifest.Manifest(**{**m2.__dict__, "signatures": sigs}), keys) == "signature_invalid"


def test_generate_and_load(tmp_path):
    key = signing.generate(str(tmp_path / "k.key"), str(tmp_path / "k.pub"))
    assert stat.S_IMODE(os.stat(tmp_path / "k.key").st_mode) == 0o600
    assert signing.load_public_key(str(tmp_path / "k.pub")).keyid == key.keyid
    s = signing.load_signer(str(tmp_path / "k.key"))
    assert s.public_key.keyid == key.keyid
    assert signing.verify(package(s), {key.keyid: AuthorisedKey(key, ("*",), False)}) == key.keyid
    with pytest.raises(KeyFileError, match="refusing to overwrite"):
        signing.generate(str(tmp_path / "k.key"), str(tmp_path / "k2.pub"))


def test_private_key_readable_by_others_is_refused(tmp_path):
    signing.generate(str(tmp_path / "k.key"), str(tmp_path / "k.pub"))
    os.chmod(tmp_path / "k.key", 0o640)
    with pytest.raises(KeyFileError, match="chmod 600"):
        signing.load_signer(str(tmp_path / "k.key"))


def test_bad_key_files(tmp_path):
    with pytest.raises(KeyFileError, match="cannot read"):
        signing.load_signer(str(tmp_path / "missing.key"))
    garbage = tmp_path / "g.key"
    garbage.write_bytes(b"not a key")
    garbage.chmod(0o600)
    with pytest.raises(KeyFileError, match="not a PEM"):
        signing.load_signer(str(garbage))
    ec = tmp_path / "ec.key"
    ec.write_bytes(generate_private_key(SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    ec.chmod(0o600)
    with pytest.raises(KeyFileError, match="not an Ed25519"):
        signing.load_signer(str(ec))
    for text in ("{", "[]", '{"keytype": "ed25519"}',
                 '{"keytype": "rsa", "scheme": "rsassa-pss-sha256", "keyval": {"public": "x"}}'):
        with pytest.raises(KeyFileError):
            signing.public_key_from_json(text)
