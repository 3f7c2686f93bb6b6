"""Ed25519 keys and manifest signatures (securesystemslib: the same key format and keyids as TUF).

A private key is a PKCS#8 PEM file that must not be readable by group or
others (refused otherwise, like an ssh key); a public key is the TUF key JSON
(`{"keytype": "ed25519", "scheme": "ed25519", "keyval": {"public": HEX}}`),
whose canonical form's SHA-256 is the keyid.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import logging
import os
import stat
from dataclasses import dataclass

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from securesystemslib.exceptions import UnverifiedSignatureError
from securesystemslib.signer import CryptoSigner, Signature, SSlibKey

from .manifest import Manifest, ManifestError, canonical

log = logging.getLogger("checker.signing")


class KeyFileError(ValueError):
    """A key file that cannot be used; the message is the one-line reason."""


@dataclass(frozen=True)
class AuthorisedKey:
    """A row of the authorisation table: which models a key may sign, and whether it is revoked."""

    key: SSlibKey
    models: tuple[str, ...]  # fnmatch patterns
    revoked: bool

    def may_sign(self, model: str) -> bool:
        return any(fnmatch.fnmatchcase(model, pattern) for pattern in self.models)


def generate(private_path: str, public_path: str) -> SSlibKey:
    """Write a new Ed25519 key pair: the private key 0600 (never overwritten), the public key JSON."""
    private = Ed25519PrivateKey.generate()
    pem = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    try:
        fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError as exc:
        raise KeyFileError(f"{private_path} exists; refusing to overwrite a private key") from exc
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    key = SSlibKey.from_crypto(private.public_key())
    with open(public_path, "w") as f:
        json.dump(key.to_dict(), f, indent=1, sort_keys=True)
        f.write("\n")
    return key


def load_signer(private_path: str) -> CryptoSigner:
    """The signer of a private key file; a public key given by mistake is named as such, not asked to be 0600."""
    try:
        with open(private_path, "rb") as f:
            data, mode = f.read(), os.fstat(f.fileno()).st_mode
        if data.lstrip().startswith(b"{"):
            raise KeyFileError(f"{private_path} is a public key; give the private key here (OUT.key of "
                               "fsgateway-fw keygen, not OUT.pub)")
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise KeyFileError(f"private key {private_path} is readable by group or others: chmod 600 it")
        private = serialization.load_pem_private_key(data, password=None)
    except KeyFileError:
        raise
    except OSError as exc:
        raise KeyFileError(f"cannot read private key {private_path}: {exc.strerror}") from exc
    except ValueError as exc:
        raise KeyFileError(f"{private_path} is not a PEM private key: {exc}") from exc
    if not isinstance(private, Ed25519PrivateKey):
        raise KeyFileError(f"{private_path} is not an Ed25519 key")
    return CryptoSigner(private, SSlibKey.from_crypto(private.public_key()))


class OnlineKey:
    """The online key file, read again whenever it is replaced (`fsgateway-fw repo rotate-online-key`).

    Removed while the checker runs (its state directory emptied), the key read last goes on signing,
    said in the log: devices keep getting fresh metadata, and the next start refuses without the file.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self._stamp: tuple[int, int] | None = None
        self._signer: CryptoSigner | None = None
        self.signer()  # a key that cannot be used is refused at start

    def signer(self) -> CryptoSigner:
        try:
            st = os.stat(self.path)
        except OSError as exc:
            if self._signer is not None and isinstance(exc, FileNotFoundError):
                log.error("online key %s was removed; signing with the key read at start until it is restored "
                          "(the next start needs the file)", self.path)
                return self._signer
            raise KeyFileError(f"cannot read private key {self.path}: {exc.strerror}") from exc
        if self._signer is None or self._stamp != (st.st_ino, st.st_mtime_ns):
            self._signer, self._stamp = load_signer(self.path), (st.st_ino, st.st_mtime_ns)
        return self._signer


def public_key_from_json(text: str) -> SSlibKey:
    try:
        doc = json.loads(text)
        material = {"keytype": doc["keytype"], "scheme": doc["scheme"], "keyval": {"public": doc["keyval"]["public"]}}
        key = SSlibKey.from_dict(keyid(material), dict(material))
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise KeyFileError(f"not a public key JSON: {exc}") from exc
    if key.keytype != "ed25519" or key.scheme != "ed25519":
        raise KeyFileError(f"only ed25519 keys are accepted, not {key.keytype}/{key.scheme}")
    return key


def keyid(material: dict) -> str:
    """SHA-256 of the canonical key JSON: the TUF keyid."""
    return hashlib.sha256(canonical(material)).hexdigest()


def load_public_key(path: str) -> SSlibKey:
    """A public key file (TUF key JSON); a private key given by mistake is named as such."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise KeyFileError(f"cannot read public key {path}: {exc.strerror}") from exc
    if b"PRIVATE KEY-----" in data:
        raise KeyFileError(f"{path} is a private key; give the public key here (OUT.pub of fsgateway-fw keygen), "
                           "and keep the private one to yourself")
    try:
        return public_key_from_json(data.decode())
    except (KeyFileError, UnicodeDecodeError) as exc:
        raise KeyFileError(f"{path}: {exc}") from exc


def sign(signed_bytes: bytes, signer: CryptoSigner) -> dict[str, str]:
    sig = signer.sign(signed_bytes)
    return {"keyid": sig.keyid, "sig": sig.signature}


def authority_problem(record: AuthorisedKey | None, keyid: str, model: str) -> tuple[int, str, str] | None:
    """(severity, reason, detail) if the key may not sign `model` now, else None (the signature aside)."""
    if record is None:
        return 0, "key_unknown", f"keyid {keyid[:16]}... is not authorised (fsgateway-fw key add)"
    if record.revoked:
        return 2, "key_revoked", f"key {keyid[:16]}... is revoked"
    if not record.may_sign(model):
        return 1, "key_not_authorised", f"key {keyid[:16]}... may not sign model {model}"
    return None


def verify(manifest: Manifest, keys: dict[str, AuthorisedKey]) -> str:
    """The keyid of a valid signature by a key authorised for the model; ManifestError otherwise.

    One good signature suffices. Failing that, the reason names the most
    specific problem seen: a forged signature by a known key is worse than a
    stranger's, and is reported as such.
    """
    problems: list[tuple[int, str, str]] = []
    for s in manifest.signatures:
        record = keys.get(s.keyid)
        problem = authority_problem(record, s.keyid, manifest.model)
        if problem or record is None:
            problems.append(problem or (0, "", ""))
            continue
        try:
            record.key.verify_signature(Signature(s.keyid, s.sig), manifest.signed_bytes)
        except UnverifiedSignatureError:
            problems.append((3, "signature_invalid", f"signature by {s.keyid[:16]}... does not verify"))
            continue
        return s.keyid
    _, reason, detail = max(problems)
    raise ManifestError(reason, detail)
