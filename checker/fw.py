"""`fsgateway-fw`: the firmware builders' and release managers' tool.

keygen/sign/verify work offline on files; key, model, list/show and repo
commands work on the version database and the bucket the checker uses (same
configuration as `fsgateway-checker`).
"""

from __future__ import annotations

import argparse
import calendar
import dataclasses
import hashlib
import json
import os
import sys
import time
import uuid
from collections.abc import Callable
from typing import Any

import trio
from botocore.exceptions import BotoCoreError, ClientError
from tuf.api.exceptions import UnsignedMetadataError
from tuf.api.metadata import Metadata, Root
from tuf.api.serialization import DeserializationError

from fsgateway.daemon import commandline, lifecycle
from fsgateway.daemon.config import ConfigError, parse_size
from fsgateway.daemon.identity import host_id
from fsgateway.daemon.logs import escape
from fsgateway.store.client import ObjectStore, StoreError, describe, make_client
from fsgateway.store.credentials import CredentialsError
from fsgateway.store.feedwriter import AnnouncingStore, FeedWriter
from fsgateway.store.retry import http_status

from . import bucketpolicy, continuity, manifest, rules, signing, status, tufrepo
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
  fsgateway-fw status sensor-x 1.2.0                    pending (and why), accepted, rejected (and why)
  fsgateway-fw list --model sensor-x
Configuration options (--config, --set, --bucket, ...) go before or after the sub-command.
"""


class RepoError(RuntimeError):
    """The repository cannot be changed as asked; the message is the one-line reason."""


def fail(message: str) -> int:
    return lifecycle.fail("fsgateway-fw", message)


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
    try:
        keyid = signing.verify(m, keys)
    except manifest.ManifestError as exc:
        if exc.reason != "key_unknown":
            raise
        given = ", ".join(k[:16] + "..." for k in keys)
        raise manifest.ManifestError(exc.reason, f"not signed by any key given with --pub ({given}); signed by "
                                     + ", ".join(sig.keyid[:16] + "..." for sig in m.signatures)) from None
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
            return fail(f"no key {args.keyid} is authorised (see: fsgateway-fw key list)")
        print(f"revoked {args.keyid}: its signatures are refused from now on")
        try:  # so that a copy of the database from before this is refused (checker/continuity.py)
            continuity.record_revoked(_client(cfg), cfg.bucket, cfg.prefix, [args.keyid])
        except (RepoError, ConfigError, CredentialsError, BotoCoreError, ClientError) as exc:
            print(f"warning: the revocation is not recorded in the bucket yet ({exc}); the checker records it "
                  "at its next start", file=sys.stderr)
    else:
        table(["KEYID", "LABEL", "MODELS", "ADDED", "STATE"],
              [[keyid, label, allowed or "-", _when(added), f"revoked {_when(revoked)}" if revoked else "active"]
               for keyid, label, added, revoked, allowed in db.key_rows()], "no keys authorised")
    return 0


def cmd_model(args: argparse.Namespace, cfg: CheckerConfig) -> int:
    db = _db(cfg)
    if args.model_command == "add":
        hw = tuple(h.strip() for h in args.hw.split(",") if h.strip())
        db.set_model(ModelPolicy(args.name, hw, parse_size(args.max_payload)))
        print(f"model {args.name}: hardware {', '.join(hw)}, payload cap {args.max_payload}")
    else:
        table(["MODEL", "HW", "MAX PAYLOAD"], [[policy.name, ",".join(policy.hw_revisions),
              human_size(policy.max_payload)] for policy in db.models().values()], "no models registered")
    return 0


def cmd_list(args: argparse.Namespace, cfg: CheckerConfig) -> int:
    since = parse_since(args.since)
    rows = [(r, key, at) for r, key, at in _db(cfg).releases(args.model)
            if (not args.channel or r.channel == args.channel) and at >= since]
    if args.json:
        print(json.dumps([{"model": r.model, "version": r.version, "release_counter": r.release_counter,
                           "channel": r.channel, "hw_revisions": list(r.hw_revisions), "sha256": r.sha256,
                           "length": r.length, "key": key, "accepted_at": _when(at)} for r, key, at in rows]))
        return 0
    table(["MODEL", "VERSION", "COUNTER", "CHANNEL", "HW", "SIZE", "ACCEPTED", "RELEASE KEY"],
          [[r.model, r.version, str(r.release_counter), r.channel, ",".join(r.hw_revisions), human_size(r.length),
            _when(at), key] for r, key, at in rows], "no releases" + _filtered(args))
    return 0


def cmd_show(args: argparse.Namespace, cfg: CheckerConfig) -> int:
    db = _db(cfg)
    row = db.release_record(args.model, args.version)
    if row is None:
        return fail(f"{args.model} {args.version} is not released")
    print(json.dumps({"release_key": row[1], "signed_by": row[2], "accepted_at": _when(row[3]),
                      "manifest": json.loads(row[0])}, indent=1))
    return 0


def cmd_verdicts(args: argparse.Namespace, cfg: CheckerConfig) -> int:
    package = f"{cfg.prefix}{rules.INCOMING}{args.model}/" if args.model else None
    rows = _db(cfg).verdict_rows(parse_since(args.since), args.outcome, package, args.limit)
    if args.json:
        print(json.dumps([{"decided_at": _when(at), "package": escape(package), "outcome": outcome, "reason": reason,
                           "detail": escape(detail), "host": escape(host)}
                          for at, package, outcome, reason, detail, host in rows]))
        return 0
    table(["DECIDED", "OUTCOME", "REASON", "PACKAGE", "DETAIL", "HOST"],
          [[_when(at), outcome, reason, package, detail, host] for at, package, outcome, reason, detail, host in rows],
          "no verdicts" + _filtered(args))
    return 0


def cmd_status(args: argparse.Namespace, cfg: CheckerConfig) -> int:
    """The status objects the checker writes for uploaders, read from the bucket (no database needed)."""
    named = [n for n in (args.model, args.version) if n]
    if not all(status.nameable(n) for n in named):
        return fail(f"{' '.join(escape(n) for n in named)} cannot be a package name: the checker answers such "
                    f"landings under {status.STATUS}{status.INVALID} (fsgateway-fw status, without arguments)")
    client = _client(cfg)
    if args.version:
        keys = [status.key(cfg.prefix, args.model, args.version, "")]
    else:
        base = cfg.key(status.STATUS) + (f"{args.model}/" if args.model else "")
        keys = [o["Key"] for page in client.get_paginator("list_objects_v2").paginate(Bucket=cfg.bucket, Prefix=base)
                for o in page.get("Contents", []) if o["Key"].endswith(".json")]
    found: list[status.Status] = []
    for key in keys:
        try:
            data = client.get_object(Bucket=cfg.bucket, Key=key)["Body"].read()
        except ClientError as exc:
            if http_status(exc) != 404:
                raise
            if args.version:
                return fail(f"no status for {args.model} {args.version} at {key}: the checker has not seen that "
                            "package (yet)")
            continue  # removed since it was listed (the checker never removes one)
        try:
            found.append(status.parse(data))
        except status.StatusError as exc:
            print(f"fsgateway-fw: {escape(key)}: {exc}; skipped", file=sys.stderr)
    if args.json:
        print(json.dumps([dataclasses.asdict(st) for st in found]))
        return 0
    table(["MODEL", "VERSION", "STATE", "REASON", "UPDATED", "DETAIL"],
          [[st.model, st.version, st.state, st.reason, st.updated_at, _explain(st)] for st in found],
          "no package status" + (f" for model {escape(args.model)}" if args.model else ""))
    return 0


def _explain(st: status.Status) -> str:
    """What happens next, for the last column: the deadline, the release key or the quarantine folder."""
    more = {"pending": f"rejected at {st.deadline} unless complete", "accepted": f"released as {st.release}",
            "duplicate": f"identical to the release {st.release}",
            "rejected": f"parts and reason.json in {st.quarantine}"}[st.state]
    return f"{st.detail}; {more}" if st.detail else more


def table(header: list[str], rows: list[list[str]], empty: str) -> None:
    """Aligned columns under a header (the last column unpadded); every cell escaped: uploaders choose names."""
    if not rows:
        print(empty)
        return
    cells = [[escape(c) for c in row] for row in [header, *rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header) - 1)]
    for row in cells:
        print("  ".join([c.ljust(w) for c, w in zip(row, widths, strict=False)] + [row[-1]]).rstrip())


def human_size(n: int) -> str:
    """1023 B, 1.5 KiB, 24.0 MiB, ...: binary units, as `ls -lh` and the size caps (512M) count."""
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{n} B" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


SINCE_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_since(text: str | None, now: float | None = None) -> float:
    """`--since`: an age (90m, 2h, 7d) or a UTC date/time (2026-12-01, 2026-12-01T10:00:00Z); epoch seconds."""
    if not text:
        return 0.0
    number, unit = text[:-1], text[-1:]
    if unit in SINCE_UNITS and number.replace(".", "", 1).isdigit():
        return (time.time() if now is None else now) - float(number) * SINCE_UNITS[unit]
    for layout in ("%Y-%m-%dT%H:%M:%SZ", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M", "%Y-%m-%d"):
        try:
            return calendar.timegm(time.strptime(text, layout))
        except ValueError:
            continue
    raise ConfigError(f"--since {escape(text)!r}: give an age (30m, 2h, 7d) or a UTC date (2026-12-01T10:00:00Z)")


def _filtered(args: argparse.Namespace) -> str:
    chosen = [f"{name} {escape(str(value))}" for name in ("model", "channel", "outcome", "since")
              if (value := getattr(args, name, None))]
    return f" ({', '.join(chosen)})" if chosen else ""


# ---------------------------------------------------------------------- repository
def cmd_bucket_policy(args: argparse.Namespace, cfg: CheckerConfig) -> int:
    """Printed, not applied: `repo init` sets a policy too, and an operator reviews this one before applying it."""
    print(json.dumps(bucketpolicy.policy(cfg.bucket, cfg.prefix, args.uploader, args.checker, args.public_read),
                     indent=1))
    return 0


ROOT_POINTER = tufrepo.METADATA + "root.json"


def _client(cfg: CheckerConfig) -> Any:
    """A client for the bucket, checked first: wrong credentials or a wrong bucket are a one-line RepoError."""
    settings = store_settings(cfg)
    problem = lifecycle.check_bucket(settings)
    if problem:
        raise RepoError(problem)
    return make_client(settings)


def cmd_repo(args: argparse.Namespace, cfg: CheckerConfig) -> int:
    return {"init": cmd_repo_init, "renew-root": cmd_repo_renew_root,
            "rotate-online-key": cmd_repo_rotate_online_key}[args.repo_command](args, cfg)


def cmd_repo_init(args: argparse.Namespace, cfg: CheckerConfig) -> int:
    """Root of trust: offline root key, online key, 1.root.json in the bucket, public read for devices."""
    client = _client(cfg)
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
    """Write N.root.json once (False if that version exists already), then point root.json at it.

    Both writes are announced in the change feed, as the checker's own writes are."""
    try:
        first = client.put_object(Bucket=cfg.bucket, Key=cfg.key(root.key), Body=root.data,
                                  ContentType="application/json", CacheControl=root.cache_control, IfNoneMatch="*")
    except ClientError as exc:
        if http_status(exc) == 412:
            return False
        raise
    pointer = client.put_object(Bucket=cfg.bucket, Key=cfg.key(ROOT_POINTER), Body=root.data,
                                ContentType="application/json", CacheControl="public, max-age=300")
    _announce(cfg, [(cfg.key(root.key), len(root.data), first.get("ETag")),
                    (cfg.key(ROOT_POINTER), len(root.data), pointer.get("ETag"))])
    return True


def _feed_writer(cfg: CheckerConfig, store: ObjectStore) -> FeedWriter:
    return FeedWriter(store, host_id(cfg.bucket, cfg.prefix, cfg.mount_dir), f"fw-{uuid.uuid4().hex[:9]}")


def _announce(cfg: CheckerConfig, written: list[tuple[str, int, str | None]]) -> None:
    """Announce PUTs made with the plain client, so that syncd mirrors the root of trust at once."""
    if not cfg.feed:
        return
    writer = _feed_writer(cfg, ObjectStore(store_settings(cfg)))
    events = [writer.event("put", key, size=size, etag=etag) for key, size, etag in written]
    if not trio.run(writer.write_journal, events):
        print("warning: the change feed could not announce the new root; syncd's reconcile will copy it",
              file=sys.stderr)


async def _refresh_announced(cfg: CheckerConfig, publisher_of: Callable[[ObjectStore], Publisher]) -> None:
    """A publisher's refresh whose writes are announced in the change feed, like the checker's."""
    store = AnnouncingStore(store_settings(cfg))
    writer = _feed_writer(cfg, store)
    store.feed = writer if cfg.feed else None
    async with trio.open_nursery() as nursery:
        nursery.start_soon(writer.run)
        await publisher_of(store).refresh()
        nursery.cancel_scope.cancel()


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
    client = _client(cfg)
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
    client = _client(cfg)
    root_signer = signing.load_signer(args.root_key)
    current = _current_root(client, cfg, root_signer)
    db = _db(cfg)
    try:  # it publishes: not from a database behind the bucket (checker/continuity.py)
        problem = continuity.check(client, cfg.bucket, cfg.prefix, db)
        if problem:
            raise RepoError(problem)
        _rotate_online_key(args, cfg, client, root_signer, current, db)
    finally:
        db.close()
    return 0


def _rotate_online_key(args: argparse.Namespace, cfg: CheckerConfig, client: Any, root_signer: signing.CryptoSigner,
                       current: Metadata[Root], db: Database) -> None:
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
    policy = RepoPolicy(cfg.targets_expiry, cfg.timestamp_expiry, cfg.timestamp_max_age)
    trio.run(_refresh_announced, cfg,
             lambda store: Publisher(store, db, cfg.prefix, signing.OnlineKey(path), policy, "fsgateway-fw"))
    print(f"targets, snapshot and timestamp re-signed with the new online key {new.keyid[:16]}...")
    final = tufrepo.next_root(Metadata[Root].from_bytes(root.data).signed, [root_signer], [new], tufrepo.utcnow(),
                              args.root_days)
    _write_next_root(client, cfg, final)


def _when(t: float | None) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t)) if t else "-"


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="fsgateway-fw", description="Sign firmware packages and manage what the "
                                "checker accepts: keys, models, releases, the TUF root of trust.",
                                epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    commandline.add_version(p, "fsgateway-fw")
    add_config_arguments(p)  # before the sub-command; each command that uses them takes them after it too
    sub = p.add_subparsers(dest="command", required=True)

    def command(parent: Any, name: str, configured: bool = True, **kwargs: Any) -> argparse.ArgumentParser:
        c = parent.add_parser(name, **kwargs)
        if configured:
            add_config_arguments(c, sub_command=True)
        return c

    s = command(sub, "keygen", False, help="new Ed25519 key pair: OUT.key (private, 0600) and OUT.pub (public)")
    s.add_argument("--out", required=True, metavar="OUT")
    s = command(sub, "sign", False, help="write manifest.json for a payload, signed with a private key")
    s.add_argument("payload")
    s.add_argument("--key", required=True, help="your private key file, OUT.key of keygen (mode 0600)")
    s.add_argument("--model", required=True)
    s.add_argument("--hw", required=True, help="hardware revisions, comma separated")
    s.add_argument("--version", required=True, help="SemVer 2.0.0, e.g. 1.4.2")
    s.add_argument("--counter", required=True, type=int, help="release counter, strictly increasing per channel")
    s.add_argument("--channel", default="stable")
    s.add_argument("-o", "--output", help="manifest path (default: manifest.json beside the payload)")
    s = command(sub, "verify", False, help="check a manifest's signature (and a payload) against public keys, "
                "offline")
    s.add_argument("manifest")
    s.add_argument("payload", nargs="?")
    s.add_argument("--pub", action="append", required=True, help="public key file, OUT.pub of keygen (repeatable)")

    s = sub.add_parser("key", help="authorise, revoke or list signing keys (database)")
    ks = s.add_subparsers(dest="key_command", required=True)
    k = command(ks, "add", help="authorise a public key for models (another key for a model = rotation)")
    k.add_argument("pub", help="the builder's public key file (OUT.pub of keygen)")
    k.add_argument("--models", required=True, help="model names or globs, comma separated")
    k.add_argument("--label")
    k = command(ks, "revoke", help="refuse this key's signatures from now on")
    k.add_argument("keyid")
    command(ks, "list")
    s = sub.add_parser("model", help="register a model (hardware revisions, payload cap) or list them (database)")
    ms = s.add_subparsers(dest="model_command", required=True)
    m = command(ms, "add")
    m.add_argument("name")
    m.add_argument("--hw", required=True, help="hardware revisions, comma separated")
    m.add_argument("--max-payload", default="1G")
    command(ms, "list")
    s = command(sub, "list", help="what is released, oldest first (database)")
    s.add_argument("--model")
    s.add_argument("--channel")
    s.add_argument("--since", metavar="AGE|DATE", help="accepted since: 2h, 7d, or a UTC date 2026-12-01")
    s.add_argument("--json", action="store_true", help="one JSON array, sizes in bytes")
    s = command(sub, "show", help="one release and its manifest (database)")
    s.add_argument("model")
    s.add_argument("version")
    s = command(sub, "verdicts", help="the latest verdicts, newest first (database)")
    s.add_argument("--model")
    s.add_argument("--outcome", choices=status.STATES[1:])
    s.add_argument("--since", metavar="AGE|DATE", help="decided since: 2h, 7d, or a UTC date 2026-12-01")
    s.add_argument("--limit", type=int, default=50)
    s.add_argument("--json", action="store_true")
    s = command(sub, "status", help="what the checker says of uploaded packages: pending (and why), accepted, "
                "rejected (bucket: readable by uploaders)")
    s.add_argument("model", nargs="?")
    s.add_argument("version", nargs="?")
    s.add_argument("--json", action="store_true")
    s = command(sub, "bucket-policy", help="print the bucket policy that keeps the upload host from publishing")
    s.add_argument("--uploader", action="append", required=True, metavar="ARN",
                   help="principal of the upload mount's credentials, e.g. arn:aws:iam:::user/ID (repeatable)")
    s.add_argument("--checker", action="append", required=True, metavar="ARN",
                   help="principal of the checker's credentials (repeatable)")
    s.add_argument("--no-public-read", dest="public_read", action="store_false",
                   help="leave out anonymous GET of metadata/ and releases/")
    s = sub.add_parser("repo", help="the TUF repository (bucket and database)")
    rs = s.add_subparsers(dest="repo_command", required=True)
    r = command(rs, "init", help="root metadata signed by an offline root key; online key; bucket policy")
    r.add_argument("--root-key", required=True, help="offline root private key (created if missing)")
    r.add_argument("--root-out", default="root.json", help="where to write the root devices trust")
    r.add_argument("--root-days", type=int, default=365)
    r.add_argument("--no-public-read", dest="public_read", action="store_false",
                   help="do not set the bucket policy for anonymous GET of metadata/ and releases/")
    r = command(rs, "renew-root", help="a new root version (new expiry; a new root key with --new-root-key), "
                "signed by the current root key and the new one")
    r.add_argument("--root-key", required=True, help="the current offline root private key")
    r.add_argument("--new-root-key", help="rotate to this root key (created if missing)")
    r.add_argument("--root-out", default="root.json", help="where to write the new root (for new devices)")
    r.add_argument("--root-days", type=int, default=365)
    r = command(rs, "rotate-online-key", help="replace the checker's online key (two root versions, metadata "
                "re-signed in between)")
    r.add_argument("--root-key", required=True, help="the offline root private key")
    r.add_argument("--root-days", type=int, default=365)
    return p


HANDLERS = {"key": cmd_key, "model": cmd_model, "list": cmd_list, "show": cmd_show, "verdicts": cmd_verdicts,
            "status": cmd_status, "bucket-policy": cmd_bucket_policy, "repo": cmd_repo}
DATABASE_ONLY = {"key", "model", "list", "show", "verdicts"}  # no bucket settings needed


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        if args.command == "keygen":
            return cmd_keygen(args)
        if args.command == "sign":
            return cmd_sign(args)
        if args.command == "verify":
            return cmd_verify(args)
        cfg = load_config(args, dict(os.environ), need_bucket=args.command not in DATABASE_ONLY)
        return HANDLERS[args.command](args, cfg)
    except (ConfigError, CredentialsError, DatabaseError, signing.KeyFileError, RepoError) as exc:
        return fail(str(exc))
    except (ClientError, BotoCoreError) as exc:
        return fail(f"S3: {describe(exc)}")
    except StoreError as exc:
        return fail(f"S3: {exc}")
    except manifest.ManifestError as exc:
        return fail(f"{exc.reason}: {exc.detail}")
    except OSError as exc:
        return fail(f"{exc.filename or ''}: {exc.strerror or exc}")


if __name__ == "__main__":
    sys.exit(main())
