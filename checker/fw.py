"""`fsgateway-fw`: the firmware builders' and release managers' tool.

keygen/sign/verify work offline on files; key, model, list/show and repo
commands work on the version database and the bucket the checker uses (same
configuration as `fsgateway-checker`).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from typing import Any

import trio
from botocore.exceptions import BotoCoreError, ClientError
from tuf.api.exceptions import UnsignedMetadataError
from tuf.api.metadata import Metadata, Root
from tuf.api.serialization import DeserializationError

from fsgateway import commandline, daemon
from fsgateway.config import ConfigError, parse_size
from fsgateway.credentials import CredentialsError
from fsgateway.logs import escape
from fsgateway.retry import http_status
from fsgateway.store import ObjectStore, StoreError, make_client

from . import bucketpolicy, manifest, signing, tufrepo
from .config import CheckerConfig
from .context import add_config_arguments, load_config, store_settings
from .db import Database, DatabaseError
from .publisher import Publisher, RepoPolicy
from .rules import ModelPolicy

EPILOG = """\
typical first use:
  fsgateway-fw keygen --out builder                      builder.key (0600) + builder.pub
  fsgateway-fw repo init --root-key /offline/root.key    root of trust + online key + bucket policy
  fsgateway-fw model add sensor-x --hw A,B --max-payload 512M
  fsgateway-fw key add builder.pub --models 'sensor-*'
  fsgateway-fw sign --key builder.key --model sensor-x --hw A,B --version 1.2.0 --counter 12 fw.bin
  cp fw.bin manifest.json /srv/firmware/incoming/sensor-x/1.2.0/
  fsgateway-fw list --model sensor-x
"""


class RepoError(RuntimeError):
    """The repository cannot be changed as asked; the message is the one-line reason."""


def fail(message: str) -> int:
    return daemon.fail("fsgateway-fw", message)


def sha256_file(path: str) -> tuple[str, int]:
    h = hashlib.sha256()
    size = 0
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
            size += len(chunk)
    return h.hexdigest(), size


# ---------------------------------------------------------------------- offline
def cmd_keygen(args: argparse.Namespace) -> int:
    key = signing.generate(f"{args.out}.key", f"{args.out}.pub")
    print(f"wrote {args.out}.key (private, 0600) and {args.out}.pub; keyid {key.keyid}")
    return 0


def cmd_sign(args: argparse.Namespace) -> int:
    signer = signing.load_signer(args.key)
    digest, size = sha256_file(args.payload)
    signed = manifest.signed_document(args.model, args.hw.split(","), args.version, args.counter, args.channel,
                                      os.path.basename(args.payload), size, digest)
    doc = {"signed": signed, "signatures": [signing.sign(manifest.canonical(signed), signer)]}
    manifest.parse(json.dumps(doc).encode())  # what the checker will refuse, refused here first
    out = args.output or os.path.join(os.path.dirname(os.path.abspath(args.payload)), "manifest.json")
    with open(out, "w") as f:
        json.dump(doc, f, indent=1, sort_keys=True)
        f.write("\n")
    print(f"wrote {out}: {args.model} {args.version} counter {args.counter} ({size} bytes, sha256 {digest[:16]}...)")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    with open(args.manifest, "rb") as f:
        m = manifest.parse(f.read())
    keys = {}
    for path in args.pub:
        key = signing.load_public_key(path)
        keys[key.keyid] = signing.AuthorisedKey(key, ("*",), False)
    keyid = signing.verify(m, keys)
    if args.payload:
        digest, size = sha256_file(args.payload)
        if (digest, size) != (m.payload_sha256, m.payload_length):
            return fail(f"payload {args.payload} does not match the manifest (sha256/length)")
    print(f"OK: {m.model} {m.version} signed by {keyid}")
    return 0


# ---------------------------------------------------------------------- database
def _db(cfg: CheckerConfig) -> Database:
    db = Database(cfg.database_url)
    db.migrate()
    return db


def cmd_key(args: argparse.Namespace, cfg: CheckerConfig) -> int:
    db = _db(cfg)
    if args.key_command == "add":
        key = signing.load_public_key(args.pub)
        models = [m.strip() for m in args.models.split(",") if m.strip()]
        db.add_key(key.keyid, json.dumps(key.to_dict(), sort_keys=True), args.label or os.path.basename(args.pub),
                   models)
        print(f"authorised {key.keyid} for {', '.join(models)}")
    elif args.key_command == "revoke":
        if not db.revoke_key(args.keyid):
            return fail(f"no key {args.keyid} in the authorisation table")
        print(f"revoked {args.keyid}: its signatures are refused from now on")
    else:
        for keyid, label, added, revoked, allowed in db.key_rows():
            state = f"revoked {_when(revoked)}" if revoked else "active"
            print(f"{keyid}  {label:<16} models={allowed or '-'}  added {_when(added)}  {state}")
    return 0


def cmd_model(args: argparse.Namespace, cfg: CheckerConfig) -> int:
    db = _db(cfg)
    if args.model_command == "add":
        hw = tuple(h.strip() for h in args.hw.split(",") if h.strip())
        db.set_model(ModelPolicy(args.name, hw, parse_size(args.max_payload)))
        print(f"model {args.name}: hardware {', '.join(hw)}, payload cap {args.max_payload}")
    else:
        for policy in db.models().values():
            print(f"{policy.name}  hw={','.join(policy.hw_revisions)}  max_payload={policy.max_payload}")
    return 0


def cmd_list(args: argparse.Namespace, cfg: CheckerConfig) -> int:
    rows = _db(cfg).releases(args.model)
    if args.json:
        print(json.dumps([{"model": r.model, "version": r.version, "release_counter": r.release_counter,
                           "channel": r.channel, "hw_revisions": list(r.hw_revisions), "sha256": r.sha256,
                           "length": r.length, "key": key, "accepted_at": _when(at)} for r, key, at in rows]))
        return 0
    for r, key, at in rows:
        print(escape(f"{r.model:<16} {r.version:<14} counter={r.release_counter:<6} {r.channel:<8} "
                     f"hw={','.join(r.hw_revisions):<10} {r.length:>12} B  {_when(at)}  {key}"))
    if not rows:
        print("no releases" + (f" for model {args.model}" if args.model else ""))
    return 0


def cmd_show(args: argparse.Namespace, cfg: CheckerConfig) -> int:
    db = _db(cfg)
    r = db.release(args.model, args.version)
    if r is None:
        return fail(f"{args.model} {args.version} is not released")
    row = db.query("SELECT manifest, release_key, keyid, accepted_at FROM releases WHERE model = ? AND version = ?",
                   (args.model, args.version))[0]
    print(json.dumps({"release_key": row[1], "signed_by": row[2], "accepted_at": _when(row[3]),
                      "manifest": json.loads(row[0])}, indent=1))
    return 0


def cmd_verdicts(args: argparse.Namespace, cfg: CheckerConfig) -> int:
    for at, package, outcome, reason, detail, host in _db(cfg).verdict_rows(args.limit):
        print(escape(f"{_when(at)}  {outcome:<9} {reason:<22} {package}  {detail}  [{host}]"))  # uploaders' text
    return 0


# ---------------------------------------------------------------------- repository
def cmd_bucket_policy(args: argparse.Namespace, cfg: CheckerConfig) -> int:
    """Printed, not applied: `repo init` sets a policy too, and an operator reviews this one before applying it."""
    print(json.dumps(bucketpolicy.policy(cfg.bucket, cfg.prefix, args.uploader, args.checker, args.public_read),
                     indent=1))
    return 0


ROOT_POINTER = tufrepo.METADATA + "root.json"


def cmd_repo(args: argparse.Namespace, cfg: CheckerConfig) -> int:
    return {"init": cmd_repo_init, "renew-root": cmd_repo_renew_root,
            "rotate-online-key": cmd_repo_rotate_online_key}[args.repo_command](args, cfg)


def cmd_repo_init(args: argparse.Namespace, cfg: CheckerConfig) -> int:
    """Root of trust: offline root key, online key, 1.root.json in the bucket, public read for devices."""
    client = make_client(store_settings(cfg))
    found = client.list_objects_v2(Bucket=cfg.bucket, Prefix=cfg.key(tufrepo.METADATA), MaxKeys=1).get("Contents")
    if found:
        return fail(f"bucket {cfg.bucket} already holds a TUF repository ({found[0]['Key']}); "
                    "renew or rotate its root with: fsgateway-fw repo renew-root")
    if not os.path.exists(args.root_key):
        signing.generate(args.root_key, args.root_key.removesuffix(".key") + ".pub")
        print(f"created root key {args.root_key}: keep it offline")
    online = cfg.online_key_path
    if not os.path.exists(online):
        os.makedirs(os.path.dirname(online) or ".", mode=0o700, exist_ok=True)
        signing.generate(online, online.removesuffix(".key") + ".pub")
        print(f"created online key {online}")
    root = tufrepo.new_root(signing.load_signer(args.root_key), signing.load_signer(online).public_key,
                            tufrepo.utcnow(), days=args.root_days)
    if not _put_root(client, cfg, root):
        return fail(f"{cfg.key(root.key)} appeared meanwhile: another repo init ran; nothing changed")
    with open(args.root_out, "wb") as f:
        f.write(root.data)
    if args.public_read:
        resources = [f"arn:aws:s3:::{cfg.bucket}/{cfg.key(p)}*" for p in (tufrepo.METADATA, tufrepo.RELEASES)]
        policy = {"Version": "2012-10-17", "Statement": [{"Sid": "fsgateway-cdn-origin", "Effect": "Allow",
                  "Principal": "*", "Action": ["s3:GetObject"], "Resource": resources}]}
        client.put_bucket_policy(Bucket=cfg.bucket, Policy=json.dumps(policy))
        print(f"bucket policy: anonymous GET of {cfg.key(tufrepo.METADATA)} and {cfg.key(tufrepo.RELEASES)}")
    print(f"wrote {cfg.key(root.key)}; devices trust {args.root_out}")
    return 0


def _put_root(client: Any, cfg: CheckerConfig, root: tufrepo.Blob) -> bool:
    """Write N.root.json once (False if that version exists already), then point root.json at it."""
    try:
        client.put_object(Bucket=cfg.bucket, Key=cfg.key(root.key), Body=root.data, ContentType="application/json",
                          CacheControl=root.cache_control, IfNoneMatch="*")
    except ClientError as exc:
        if http_status(exc) == 412:
            return False
        raise
    client.put_object(Bucket=cfg.bucket, Key=cfg.key(ROOT_POINTER), Body=root.data, ContentType="application/json",
                      CacheControl="public, max-age=300")
    return True


def _current_root(client: Any, cfg: CheckerConfig, root_signer: signing.CryptoSigner) -> Metadata[Root]:
    """The newest root in the bucket, checked against its own root keys and the key given for it."""
    try:
        data = client.get_object(Bucket=cfg.bucket, Key=cfg.key(ROOT_POINTER))["Body"].read()
    except ClientError as exc:
        raise RepoError(f"cannot read {cfg.key(ROOT_POINTER)} ({http_status(exc)}): run fsgateway-fw repo init "
                        "first") from exc
    try:
        md = Metadata[Root].from_bytes(data)
        md.signed.verify_delegate("root", md.signed_bytes, md.signatures)
    except (DeserializationError, UnsignedMetadataError) as exc:
        raise RepoError(f"{cfg.key(ROOT_POINTER)} is not a valid self-signed root: {exc}") from exc
    if root_signer.public_key.keyid not in md.signed.roles["root"].keyids:
        raise RepoError(f"{root_signer.public_key.keyid[:16]}... is not a root key of root v{md.signed.version}")
    return md


def _write_next_root(client: Any, cfg: CheckerConfig, root: tufrepo.Blob) -> None:
    if not _put_root(client, cfg, root):
        raise RepoError(f"{cfg.key(root.key)} exists already (another rotation ran?); nothing changed")
    print(f"wrote {cfg.key(root.key)}")


def cmd_repo_renew_root(args: argparse.Namespace, cfg: CheckerConfig) -> int:
    """A new root version with a new expiry, and a new root key if one is given (signed by old and new)."""
    client = make_client(store_settings(cfg))
    old = signing.load_signer(args.root_key)
    current = _current_root(client, cfg, old)
    signers = [old]
    if args.new_root_key:
        if not os.path.exists(args.new_root_key):
            signing.generate(args.new_root_key, args.new_root_key.removesuffix(".key") + ".pub")
            print(f"created root key {args.new_root_key}: keep it offline")
        signers.append(signing.load_signer(args.new_root_key))
    online = [current.signed.keys[k] for k in current.signed.roles["timestamp"].keyids]
    root = tufrepo.next_root(current.signed, signers, online, tufrepo.utcnow(), args.root_days)
    _write_next_root(client, cfg, root)
    with open(args.root_out, "wb") as f:
        f.write(root.data)
    print(f"devices trusting an older root follow the chain to v{current.signed.version + 1}; new devices may be "
          f"given {args.root_out}")
    return 0


def cmd_repo_rotate_online_key(args: argparse.Namespace, cfg: CheckerConfig) -> int:
    """New online key: root N+1 trusts old and new, metadata re-signed with the new, root N+2 drops the old.

    Devices at any point of this trust what the checker serves; a running
    checker reads the replaced key file before its next signature.
    """
    client = make_client(store_settings(cfg))
    root_signer = signing.load_signer(args.root_key)
    current = _current_root(client, cfg, root_signer)
    path = cfg.online_key_path
    new_path = path.removesuffix(".key") + ".new.key"
    if not os.path.exists(new_path):  # else: continuing a rotation that was interrupted
        signing.generate(new_path, new_path.removesuffix(".key") + ".pub")
    new = signing.load_signer(new_path).public_key
    old = signing.load_signer(path).public_key
    both = [old, new] if old.keyid != new.keyid else [new]
    root = tufrepo.next_root(current.signed, [root_signer], both, tufrepo.utcnow(), args.root_days)
    _write_next_root(client, cfg, root)
    os.replace(new_path.removesuffix(".key") + ".pub", path.removesuffix(".key") + ".pub")
    os.replace(new_path, path)
    db = _db(cfg)
    try:
        publisher = Publisher(ObjectStore(store_settings(cfg)), db, cfg.prefix, signing.OnlineKey(path),
                              RepoPolicy(cfg.targets_expiry, cfg.timestamp_expiry, cfg.timestamp_max_age),
                              "fsgateway-fw")
        trio.run(publisher.refresh)
    finally:
        db.close()
    print(f"targets, snapshot and timestamp re-signed with the new online key {new.keyid[:16]}...")
    final = tufrepo.next_root(Metadata[Root].from_bytes(root.data).signed, [root_signer], [new], tufrepo.utcnow(),
                              args.root_days)
    _write_next_root(client, cfg, final)
    return 0


def _when(t: float | None) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t)) if t else "-"


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="fsgateway-fw", description="Sign firmware packages and manage what the "
                                "checker accepts: keys, models, releases, the TUF root of trust.",
                                epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    commandline.add_version(p, "fsgateway-fw")
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("keygen", help="new Ed25519 key pair: OUT.key (0600) and OUT.pub")
    s.add_argument("--out", required=True, metavar="OUT")
    s = sub.add_parser("sign", help="write manifest.json for a payload, signed with a private key")
    s.add_argument("payload")
    s.add_argument("--key", required=True, help="private key file (0600)")
    s.add_argument("--model", required=True)
    s.add_argument("--hw", required=True, help="hardware revisions, comma separated")
    s.add_argument("--version", required=True, help="SemVer 2.0.0, e.g. 1.4.2")
    s.add_argument("--counter", required=True, type=int, help="release counter, strictly increasing per channel")
    s.add_argument("--channel", default="stable")
    s.add_argument("-o", "--output", help="manifest path (default: manifest.json beside the payload)")
    s = sub.add_parser("verify", help="check a manifest's signature (and a payload) against public keys")
    s.add_argument("manifest")
    s.add_argument("payload", nargs="?")
    s.add_argument("--pub", action="append", required=True, help="public key file (repeatable)")
    db_commands = []
    s = sub.add_parser("key", help="authorise, revoke or list signing keys")
    ks = s.add_subparsers(dest="key_command", required=True)
    k = ks.add_parser("add", help="authorise a public key for models (another key for a model = rotation)")
    k.add_argument("pub")
    k.add_argument("--models", required=True, help="model names or globs, comma separated")
    k.add_argument("--label")
    k = ks.add_parser("revoke", help="refuse this key's signatures from now on")
    k.add_argument("keyid")
    ks.add_parser("list")
    db_commands.append(s)
    s = sub.add_parser("model", help="register a model (hardware revisions, payload cap) or list them")
    ms = s.add_subparsers(dest="model_command", required=True)
    m = ms.add_parser("add")
    m.add_argument("name")
    m.add_argument("--hw", required=True, help="hardware revisions, comma separated")
    m.add_argument("--max-payload", default="1G")
    ms.add_parser("list")
    db_commands.append(s)
    s = sub.add_parser("list", help="what is released (for one model)")
    s.add_argument("--model")
    s.add_argument("--json", action="store_true")
    db_commands.append(s)
    s = sub.add_parser("show", help="one release and its manifest")
    s.add_argument("model")
    s.add_argument("version")
    db_commands.append(s)
    s = sub.add_parser("verdicts", help="the latest verdicts, newest first")
    s.add_argument("--limit", type=int, default=50)
    db_commands.append(s)
    s = sub.add_parser("bucket-policy", help="print the bucket policy that keeps the upload host from publishing")
    s.add_argument("--uploader", action="append", required=True, metavar="ARN",
                   help="principal of the upload mount's credentials, e.g. arn:aws:iam:::user/ID (repeatable)")
    s.add_argument("--checker", action="append", required=True, metavar="ARN",
                   help="principal of the checker's credentials (repeatable)")
    s.add_argument("--no-public-read", dest="public_read", action="store_false",
                   help="leave out anonymous GET of metadata/ and releases/")
    db_commands.append(s)
    s = sub.add_parser("repo", help="the TUF repository")
    rs = s.add_subparsers(dest="repo_command", required=True)
    r = rs.add_parser("init", help="root metadata signed by an offline root key; online key; bucket policy")
    r.add_argument("--root-key", required=True, help="offline root private key (created if missing)")
    r.add_argument("--root-out", default="root.json", help="where to write the root devices trust")
    r.add_argument("--root-days", type=int, default=365)
    r.add_argument("--no-public-read", dest="public_read", action="store_false",
                   help="do not set the bucket policy for anonymous GET of metadata/ and releases/")
    r = rs.add_parser("renew-root", help="a new root version (new expiry; a new root key with --new-root-key), "
                      "signed by the current root key and the new one")
    r.add_argument("--root-key", required=True, help="the current offline root private key")
    r.add_argument("--new-root-key", help="rotate to this root key (created if missing)")
    r.add_argument("--root-out", default="root.json", help="where to write the new root (for new devices)")
    r.add_argument("--root-days", type=int, default=365)
    r = rs.add_parser("rotate-online-key", help="replace the checker's online key (two root versions, metadata "
                      "re-signed in between)")
    r.add_argument("--root-key", required=True, help="the offline root private key")
    r.add_argument("--root-days", type=int, default=365)
    db_commands.append(s)
    for s in db_commands:
        add_config_arguments(s)
    return p


HANDLERS = {"key": cmd_key, "model": cmd_model, "list": cmd_list, "show": cmd_show, "verdicts": cmd_verdicts,
            "bucket-policy": cmd_bucket_policy, "repo": cmd_repo}


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        if args.command == "keygen":
            return cmd_keygen(args)
        if args.command == "sign":
            return cmd_sign(args)
        if args.command == "verify":
            return cmd_verify(args)
        return HANDLERS[args.command](args, load_config(args, dict(os.environ)))
    except (ConfigError, CredentialsError, DatabaseError, signing.KeyFileError, RepoError) as exc:
        return fail(str(exc))
    except (ClientError, BotoCoreError, StoreError) as exc:
        return fail(f"S3: {exc}")
    except manifest.ManifestError as exc:
        return fail(f"{exc.reason}: {exc.detail}")
    except OSError as exc:
        return fail(f"{exc.filename or ''}: {exc.strerror or exc}")


if __name__ == "__main__":
    sys.exit(main())
