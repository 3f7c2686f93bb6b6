"""The object-store client: boto3 in worker threads, retries under a deadline, metrics.

Every request runs in a trio worker thread behind one CapacityLimiter (the
connection pool size), is retried with jittered backoff while the failure is
transient, and ends in a `StoreError` carrying the errno the filesystem
reports once the deadline has passed. This layer knows keys and bytes, not
files or inodes.
"""

from __future__ import annotations

import errno
import functools
import hashlib
import logging
import os
import time
from base64 import b64encode
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass, field
from datetime import datetime
from email.utils import parsedate_to_datetime
from functools import partial
from typing import Any
from urllib.parse import unquote_to_bytes

import boto3
import botocore.session
import botocore.utils
import trio
from botocore.config import Config as BotoConfig
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError, SSLError

from fsgateway.store import metrics
from fsgateway.store.concurrency import gather
from fsgateway.store.credentials import Keys
from fsgateway.store.deadline import current as caller_deadline
from fsgateway.store.errors import GatewayError
from fsgateway.store.quickcalls import QuickCalls, receive
from fsgateway.store.retry import Backoff, errno_for, error_code, http_status, is_transient

log = logging.getLogger("fsgateway.store")

# answers that are not failures of the store, by HTTP status: their outcome label in REQUESTS
ANSWERS = {404: "not_found", 412: "precondition_failed"}
MAX_SINGLE_COPY = 5 << 30  # CopyObject limit; larger objects are copied part by part
COPY_PART_SIZE = 512 << 20


class StoreError(GatewayError):
    """A request that failed for good; `errno` is what the file operation reports."""

    def __init__(self, kind: str, key: str, cause: BaseException, errno_: int) -> None:
        super().__init__(errno_, f"{kind} {key!r}: {describe(cause)}")
        self.kind = kind
        self.key = key
        self.cause = cause


def describe(exc: BaseException) -> str:
    """A short human reason for an S3 failure (RGW error bodies may have no Message)."""
    if isinstance(exc, ClientError):
        err = exc.response.get("Error", {})
        msg = err.get("Message") or ""
        return f"{error_code(exc)} (HTTP {http_status(exc)}){': ' + msg if msg else ''}"
    return f"{type(exc).__name__}: {exc}"


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int
    etag: str
    last_modified: datetime | None
    metadata: dict[str, str] = field(default_factory=dict)
    content_type: str | None = None


@dataclass(slots=True)
class ListEntry:
    """One object of a listing; ETag as listed (quoted). Read-only by convention, not frozen: a frozen
    dataclass's __init__ costs 3.4x (0.34 s instead of 0.10 s per 100k entries, the same as the dicts it replaces)."""

    key: str
    size: int
    etag: str
    last_modified: datetime | None


@dataclass(frozen=True)
class ListPage:
    """One ListObjectsV2 page: objects, common prefixes (with a delimiter), and the token of the next page."""

    entries: list[ListEntry]
    prefixes: list[str]
    token: str | None


@dataclass(frozen=True, slots=True)
class Upload:
    """An unfinished multipart upload."""

    key: str
    upload_id: str
    initiated: datetime | None


@dataclass(frozen=True)
class FileSlice:
    """Part of a local file to send as a request body, read in the worker thread."""

    path: str
    offset: int
    length: int

    def read(self) -> bytes:
        with open(self.path, "rb") as f:
            f.seek(self.offset)
            data = f.read(self.length)
        if len(data) != self.length:
            raise OSError(f"short read from staging file {self.path}")
        return data


Body = bytes | bytearray | memoryview | FileSlice


class SliceReader:
    """A `FileSlice` as a request body streamed from the page cache, never held whole in memory.

    urllib3 sends a file-like body as it reads it, `read(16384)` at a time, each block sent
    before the next is read. A read here fills one buffer of `BLOCK` bytes, whatever was
    asked, and returns a view of it (urllib3 sends what it gets): an 8 MiB part costs 32
    preads and sends instead of 512, and no new memory per block. The view is valid until the
    next read, which is how urllib3 and botocore (hashing a signed payload) consume it.
    `__len__` gives botocore the Content-Length; `seek`/`tell` let it rewind. Each attempt of
    a request opens a reader of its own, so a retry sends the slice again from its start.
    """

    BLOCK = 256 << 10

    def __init__(self, part: FileSlice) -> None:
        self.part = part
        self.pos = 0
        self.buf = memoryview(bytearray(min(self.BLOCK, part.length)))
        self.fd = os.open(part.path, os.O_RDONLY)

    def __enter__(self) -> SliceReader:
        return self

    def __exit__(self, *exc: object) -> None:
        os.close(self.fd)

    def __len__(self) -> int:
        return self.part.length

    def read(self, size: int | None = -1) -> bytes | memoryview:
        left = self.part.length - self.pos
        if size is None or size < 0:
            data = os.pread(self.fd, left, self.part.offset + self.pos)
            got: bytes | memoryview = data
            n = len(data)
        else:
            n = os.preadv(self.fd, [self.buf[:min(left, len(self.buf))]], self.part.offset + self.pos) if left else 0
            got = self.buf[:n]
        if n == 0 and left:  # the file is shorter than the slice: never send fewer bytes than announced
            raise OSError(errno.EIO, f"short read from {self.part.path}")
        self.pos += n
        return got if n else b""

    def seek(self, pos: int, whence: int = os.SEEK_SET) -> int:
        self.pos = pos + (self.pos if whence == os.SEEK_CUR else self.part.length if whence == os.SEEK_END else 0)
        return self.pos

    def tell(self) -> int:
        return self.pos


def write_exactly(fd: int, data: bytes | bytearray | memoryview, offset: int) -> None:
    """pwrite all of `data` at `offset`; a write that stops short (a full disk) is ENOSPC, never ignored."""
    view = memoryview(data)
    while view:
        n = os.pwrite(fd, view, offset)
        if n <= 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        view, offset = view[n:], offset + n


def receive_exactly(response: dict[str, Any], view: memoryview) -> None:
    """Fill `view` with a GetObject answer's body (`quickcalls.receive`), for clients `QuickCalls` cannot serve."""
    body = response["Body"]
    receive(getattr(body, "_raw_stream", body), response.get("ContentLength"), view)


def _materialize(body: Body) -> bytes | bytearray | memoryview:
    return body.read() if isinstance(body, FileSlice) else body


def multipart_etag(part_etags: list[str]) -> str | None:
    """The ETag S3 gives an object completed from these parts (MD5 of their MD5s, "-N"); None if unknown."""
    try:
        digests = b"".join(bytes.fromhex(e.strip('"')) for e in part_etags)
    except ValueError:
        return None
    if len(digests) != 16 * len(part_etags):
        return None
    return f"{hashlib.md5(digests).hexdigest()}-{len(part_etags)}"


def decode_key(raw: str) -> str:
    """A key from a listing with `EncodingType=url`: form encoding, as botocore decodes it.

    SeaweedFS sends a space as `+` (and a literal `+` as `%2B`), RGW sends `%20`; plain
    percent-decoding would turn `a b` into `a+b`. Most keys hold no escape but RGW's `%2F` for
    each slash: those skip the byte round trip (the same string; in a large listing that round
    trip was a fifth of the mount's own CPU). Every `%2F` is an escape, so replacing it first
    leaves the same bytes to decode.
    """
    text = raw.replace("+", " ")
    if "%" in text:
        text = text.replace("%2F", "/")
        if "%" in text:
            return unquote_to_bytes(text).decode("utf-8", "surrogateescape")
    return text


@dataclass(frozen=True)
class StoreSettings:
    bucket: str
    endpoint: str | None
    region: str
    path_style: bool
    keys: Keys | None
    profile: str | None
    verify: bool | str
    max_connections: int
    connect_timeout: float
    read_timeout: float
    retry_deadline: float
    # False: request bodies are not hashed again for the SigV4 signature (on a large write, the SHA-256
    # of every part was 15 % of the CPU); every PUT and part then carries a signed Content-MD5 instead,
    # which the server checks. For a client that knows its parts' MD5s already (the mount).
    sign_payloads: bool = True


def parse_timestamp(value: str | int | float) -> datetime:
    """botocore's timestamp parser, with the forms S3 sends parsed by the standard library.

    botocore parses every `LastModified` with dateutil: about half of the CPU
    time of listing 5,000 objects (bench/PROFILE.md), 3% of a cold read's (the
    Last-Modified header of each ranged GET, 85 us against 4 us). `fromisoformat`
    (listings) and `parsedate_to_datetime` (the headers of GET and HEAD, RFC
    7231's `Tue, 01 Dec 2026 16:00:00 GMT`) give the same instant; anything
    else (epochs) is left to botocore.
    """
    if isinstance(value, str):
        try:
            if len(value) >= 20 and value[10] == "T":
                return datetime.fromisoformat(value)
            if value.endswith(" GMT"):
                return parsedate_to_datetime(value)
        except (TypeError, ValueError):
            pass
    return botocore.utils.parse_timestamp(value)


#: Bodies up to this size are sent with their headers, without waiting for `100 Continue`.
NO_CONTINUE_MAX = 64 << 10


def skip_continue_for_small_bodies(model: Any, params: dict[str, Any], **_: Any) -> None:
    """Drop botocore's `Expect: 100-continue` from a PUT or POST whose body is small and unconditional.

    botocore asks for it on every file-like body, and PutObject turns bytes into one: each
    small PUT then waits a round trip for the server's `100 Continue` before its first body
    byte (0.3 ms of a 5.7 ms PUT of 4 KiB on RGW). The header lets a server refuse a large
    body before it is sent; a small one fits in the socket buffers, so an early refusal
    still arrives as a response (test_store_put.py). A conditional PUT keeps it: its 412 is
    an expected answer, sent before the body. `Expect` is not signed (SigV4 leaves it out).
    """
    headers = params.get("headers", {})
    if headers.get("Expect") != "100-continue" or "If-None-Match" in headers or "If-Match" in headers:
        return
    length = botocore.utils.determine_content_length(params.get("body"))
    if length is not None and length <= NO_CONTINUE_MAX:
        del headers["Expect"]


def make_client(s: StoreSettings) -> Any:
    """A boto3 S3 client with the checksum settings RGW needs over HTTPS (SERVERS.md)."""
    core = botocore.session.get_session()
    core.get_component("response_parser_factory").set_parser_defaults(timestamp_parser=parse_timestamp)
    session = boto3.session.Session(
        botocore_session=core,
        aws_access_key_id=s.keys.access_key if s.keys else None,
        aws_secret_access_key=s.keys.secret_key if s.keys else None,
        profile_name=s.profile,
        region_name=s.region,
    )
    cfg = BotoConfig(
        max_pool_connections=s.max_connections,
        connect_timeout=s.connect_timeout,
        read_timeout=s.read_timeout,
        retries={"total_max_attempts": 1, "mode": "standard"},  # we retry ourselves, under a deadline
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
        s3={"addressing_style": "path" if s.path_style else "auto",
            **({} if s.sign_payloads else {"payload_signing_enabled": False})},
        tcp_keepalive=True,
    )
    if s.verify is False:
        import urllib3

        urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
    client = session.client("s3", endpoint_url=s.endpoint, verify=s.verify, config=cfg)
    client.meta.events.register_last("before-call.s3", skip_continue_for_small_bodies)  # after botocore's own
    return client


def startup_problem(exc: BaseException, s: StoreSettings) -> str:
    """The one-line reason a mount cannot start, for HeadBucket's failure `exc`."""
    where = s.endpoint or "the default AWS endpoint"
    if isinstance(exc, NoCredentialsError):
        return "no S3 credentials found (use passwd_file=, profile=, or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY)"
    if isinstance(exc, SSLError):
        return f"TLS error talking to {where}: {exc} (set ca_bundle= or no_verify_ssl)"
    status, code = http_status(exc), error_code(exc)
    if code in ("InvalidAccessKeyId", "SignatureDoesNotMatch") or status == 403:
        return f"access to bucket {s.bucket!r} denied at {where} ({code}): wrong credentials or no permission"
    if status == 404 or code == "NoSuchBucket":
        return f"bucket {s.bucket!r} does not exist at {where}"
    if isinstance(exc, BotoCoreError | OSError):
        return f"cannot reach S3 endpoint {where}: {exc}"
    return f"S3 endpoint {where} refused HeadBucket: {describe(exc)}"


@functools.cache
def _ok_metrics(role: str, kind: str) -> tuple[Any, Any]:
    """The labelled latency and success series of one request kind, looked up once (a few kinds per role)."""
    return metrics.REQUEST_SECONDS.labels(role, kind), metrics.REQUESTS.labels(role, kind, "ok")


@functools.cache
def _uploaded(role: str) -> Any:
    return metrics.BYTES_UP.labels(role)


class ObjectStore:
    """Async S3 operations on one bucket."""

    def __init__(self, settings: StoreSettings, client: Any | None = None, role: str = "primary") -> None:
        self.settings = settings
        self.role = role
        self.bucket = settings.bucket
        self.client = client or make_client(settings)
        self.quick = QuickCalls.for_client(self.client, self.bucket)
        self.limiter = trio.CapacityLimiter(settings.max_connections)
        self.backoff = Backoff()

    async def _call(self, kind: str, key: str, fn: Callable[[], Any]) -> Any:
        """Run `fn` in a worker thread; retry transient failures until the caller's deadline.

        The deadline covers the wait for a connection slot and every attempt: at
        the deadline the attempt under way is abandoned (its thread ends on its
        own, bounded by the socket timeouts) and the caller gets EIO.
        """
        deadline = caller_deadline(self.settings.retry_deadline)
        attempt = 0
        while True:
            t0 = time.monotonic()
            try:
                with trio.move_on_at(deadline) as scope:
                    result = await trio.to_thread.run_sync(fn, limiter=self.limiter, abandon_on_cancel=True)
                if scope.cancelled_caught:
                    raise TimeoutError(f"no answer within retry_deadline ({self.settings.retry_deadline:g} s)")
            except (ClientError, BotoCoreError, OSError) as exc:
                metrics.REQUEST_SECONDS.labels(self.role, kind).observe(time.monotonic() - t0)
                status = http_status(exc)
                outcome = ANSWERS.get(status or 0) or ("transient" if is_transient(exc) else "error")
                metrics.REQUESTS.labels(self.role, kind, outcome).inc()
                if is_transient(exc):
                    delay = self.backoff.delay(attempt)
                    if trio.current_time() + delay < deadline:
                        attempt += 1
                        metrics.RETRIES.labels(self.role, kind).inc()
                        log.warning("retrying %s %s after %s (attempt %d)", kind, key, describe(exc), attempt)
                        await trio.sleep(delay)
                        continue
                    log.error("giving up on %s %s after %d attempts: %s", kind, key, attempt + 1, describe(exc))
                elif status == 412:  # a condition the caller set (If-None-Match, If-Match) did not hold: its call
                    log.info("%s %s: precondition failed: %s", kind, key, describe(exc))
                elif status != 404:
                    log.error("%s %s failed: %s", kind, key, describe(exc))
                raise StoreError(kind, key, exc, errno_for(exc)) from exc
            elapsed = time.monotonic() - t0
            seconds, ok = _ok_metrics(self.role, kind)
            seconds.observe(elapsed)
            ok.inc()
            log.debug("%s %s %s: ok in %.3f s", self.role, kind, key, elapsed)
            return result

    # ------------------------------------------------------------------ reads
    async def head_bucket(self) -> None:
        await self._call("head_bucket", "", partial(self.client.head_bucket, Bucket=self.bucket))

    async def head(self, key: str) -> ObjectInfo | None:
        try:
            r = await self._call("head", key, partial(self.client.head_object, Bucket=self.bucket, Key=key))
        except StoreError as exc:
            if http_status(exc.cause) == 404:
                return None
            raise
        return ObjectInfo(key, r["ContentLength"], r.get("ETag", ""), r.get("LastModified"),
                          r.get("Metadata", {}), r.get("ContentType"))

    async def list_page(
        self, prefix: str, token: str | None, delimiter: str = "/", max_keys: int = 1000,
        start_after: str | None = None,
    ) -> ListPage:
        """One ListObjectsV2 page; keys after `start_after` only.

        Keys are requested URL-encoded (so any byte survives the XML) and decoded
        here; bytes that are not UTF-8 stay as surrogates, which `keys.name_problem`
        reports as `invalid_utf8`.
        """
        kw: dict[str, Any] = {"Bucket": self.bucket, "Prefix": prefix, "MaxKeys": max_keys, "EncodingType": "url"}
        if delimiter:
            kw["Delimiter"] = delimiter
        if token:
            kw["ContinuationToken"] = token
        if start_after:
            kw["StartAfter"] = start_after
        r = await self._call("list", prefix, partial(self.client.list_objects_v2, **kw))
        decode = decode_key if r.get("EncodingType") == "url" else str  # servers may ignore the request
        prefixes = [decode(p["Prefix"]) for p in r.get("CommonPrefixes", [])]
        entries = [ListEntry(decode(o["Key"]), o["Size"], o.get("ETag", ""), o.get("LastModified"))
                   for o in r.get("Contents", [])]
        return ListPage(entries, prefixes, r.get("NextContinuationToken") if r.get("IsTruncated") else None)

    async def list_all(self, prefix: str, delimiter: str = "", start_after: str | None = None,
                       max_keys: int = 1000) -> AsyncGenerator[ListPage, None]:
        """Every page of a listing, in key order.

        Pages, not entries: a delimited listing's prefixes come with them, and
        callers work a page at a time (read its journals concurrently, count
        progress, stop once a page passes a key). Wrap in `aclosing` to stop early.
        """
        token = None
        while True:
            page = await self.list_page(prefix, token, delimiter, max_keys, start_after)
            yield page
            if page.token is None:
                return
            token = page.token

    async def get(self, key: str, start: int = 0, end: int | None = None, if_match: str | None = None) -> bytes:
        """Bytes [start, end) of `key` (all of it by default); with `if_match` an overwrite is ESTALE."""
        return (await self.get_with_info(key, start, end, if_match))[0]

    async def get_with_info(self, key: str, start: int = 0, end: int | None = None,
                            if_match: str | None = None) -> tuple[bytes, ObjectInfo]:
        """Like `get`, plus what the response says of the whole object (size, ETag, metadata): no HEAD needed."""

        def fetch() -> tuple[bytes, ObjectInfo]:
            kw: dict[str, Any] = {"Bucket": self.bucket, "Key": key}
            if start or end is not None:
                kw["Range"] = f"bytes={start}-{'' if end is None else end - 1}"
            if if_match:
                kw["IfMatch"] = if_match
            r = self.client.get_object(**kw)
            body = r["Body"]
            try:
                data = body.read()
            finally:
                body.close()
            size = int(r["ContentRange"].rpartition("/")[2]) if r.get("ContentRange") else r["ContentLength"]
            return data, ObjectInfo(key, size, r.get("ETag", ""), r.get("LastModified"), r.get("Metadata", {}),
                                    r.get("ContentType"))

        data, info = await self._call("get", key, fetch)
        metrics.BYTES_DOWN.labels(self.role).inc(len(data))
        return data, info

    async def get_buffer(self, key: str, start: int, end: int, if_match: str | None = None,
                         into: bytearray | None = None) -> bytearray:
        """Bytes [start, end) of `key` received straight into one buffer: `into` (of that size) if given.

        Reusing `into` spares the page faults and zeroing of a new mapping per
        chunk. It is the caller's again only once this returns: a cancelled
        call's abandoned thread may still be writing into it.
        """
        if into is not None and len(into) != end - start:
            raise ValueError(f"a buffer of {len(into)} bytes for a range of {end - start}")

        def fetch() -> bytearray:
            buf = into if into is not None else bytearray(end - start)
            if self.quick is not None:
                self.quick.get_into(key, start, memoryview(buf), if_match)
                return buf
            kw: dict[str, Any] = {"Bucket": self.bucket, "Key": key, "Range": f"bytes={start}-{end - 1}"}
            if if_match:
                kw["IfMatch"] = if_match
            receive_exactly(self.client.get_object(**kw), memoryview(buf))
            return buf

        data = await self._call("get", key, fetch)
        metrics.BYTES_DOWN.labels(self.role).inc(len(data))
        return data

    async def download_to(self, key: str, size: int, path: str, if_match: str | None, chunk: int,
                          digest: bool = True) -> str | None:
        """Copy object bytes into a local file, chunk by chunk (bounded memory); a full disk is ENOSPC.

        With `digest`, returns the SHA-256 of the bytes written (hashed on the way, in the worker
        thread that writes them): nothing checks a GET's body on its way, the caller compares."""
        fd = os.open(path, os.O_WRONLY)
        hasher = hashlib.sha256() if digest else None

        def write(data: bytearray, start: int) -> None:
            if hasher is not None:
                hasher.update(data)
            write_exactly(fd, data, start)

        try:
            for start in range(0, size, chunk):
                data = await self.get_buffer(key, start, min(size, start + chunk), if_match)
                await trio.to_thread.run_sync(write, data, start)
                del data
        finally:
            os.close(fd)
        return hasher.hexdigest() if hasher is not None else None

    # ------------------------------------------------------------------ writes
    async def put(self, key: str, body: Body, metadata: dict[str, str], content_type: str,
                  if_none_match: bool = False, cache_control: str | None = None, md5_hex: str | None = None) -> str:
        """PutObject with Content-MD5, so the server rejects a body damaged on the way.

        `md5_hex`: the body's MD5 when the caller has it already (not computed a second time)."""

        def send() -> str:
            data = bytes(_materialize(body))
            md5_b64 = b64encode(bytes.fromhex(md5_hex) if md5_hex else hashlib.md5(data).digest()).decode()
            if self.quick is not None:
                headers = {"Content-MD5": md5_b64, "Content-Type": content_type,
                           **{f"x-amz-meta-{k}": v for k, v in metadata.items()}}
                if if_none_match:
                    headers["If-None-Match"] = "*"
                if cache_control:
                    headers["Cache-Control"] = cache_control
                if if_none_match or len(data) > NO_CONTINUE_MAX:
                    headers["Expect"] = "100-continue"
                return self.quick.put(key, data, headers)
            kw: dict[str, Any] = {"Bucket": self.bucket, "Key": key, "Body": data, "ContentMD5": md5_b64,
                                  "Metadata": metadata, "ContentType": content_type}
            if if_none_match:
                kw["IfNoneMatch"] = "*"
            if cache_control:
                kw["CacheControl"] = cache_control
            return self.client.put_object(**kw).get("ETag", "")

        etag = await self._call("put", key, send)
        _uploaded(self.role).inc(body.length if isinstance(body, FileSlice) else len(body))
        return etag

    async def create_multipart(self, key: str, metadata: dict[str, str], content_type: str,
                               cache_control: str | None = None) -> str:
        """A new multipart upload; uploads a retried request may have created unseen are aborted."""
        extra = {"CacheControl": cache_control} if cache_control else {}
        attempts = 0

        def create() -> dict:
            nonlocal attempts
            attempts += 1
            return self.client.create_multipart_upload(Bucket=self.bucket, Key=key, Metadata=metadata,
                                                       ContentType=content_type, **extra)

        upload_id = (await self._call("create_multipart", key, create))["UploadId"]
        if attempts > 1:  # an earlier attempt may have created an upload whose answer was lost
            for up in await self.list_multipart_uploads(key):
                if up.key == key and up.upload_id != upload_id:
                    log.info("aborting upload %s of %s: created by a request whose answer was lost", up.upload_id,
                             key)
                    await self.abort_multipart(key, up.upload_id)
        return upload_id

    async def upload_part(self, key: str, upload_id: str, number: int, body: Body, md5_hex: str | None = None) -> str:
        """One part; returns its ETag. With `md5_hex` (the body's MD5, known before sending), or when
        payloads are not signed, the request carries Content-MD5: the server refuses a body damaged on
        the way. A `FileSlice` is streamed from the file (`SliceReader`) and needs its `md5_hex`."""

        if isinstance(body, FileSlice) and md5_hex is None:
            raise ValueError(f"part {number} of {key}: a file slice is sent with its MD5")

        def request(data: bytes | bytearray | memoryview | SliceReader, md5: str | None) -> str:
            kw: dict[str, Any] = {"Bucket": self.bucket, "Key": key, "UploadId": upload_id, "PartNumber": number,
                                  "Body": data}
            if md5:
                kw["ContentMD5"] = b64encode(bytes.fromhex(md5)).decode()
            return self.client.upload_part(**kw)["ETag"]

        def send() -> str:
            if isinstance(body, FileSlice):
                with SliceReader(body) as reader:
                    return request(reader, md5_hex)
            unsigned = not self.settings.sign_payloads
            return request(body, md5_hex or (hashlib.md5(body).hexdigest() if unsigned else None))

        result = await self._call("upload_part", key, send)
        metrics.BYTES_UP.labels(self.role).inc(body.length if isinstance(body, FileSlice) else len(body))
        return result

    async def complete_multipart(self, key: str, upload_id: str, etags: list[str]) -> str:
        """Returns the object's ETag as the server reports it (RGW 16.2: empty).

        A retried request whose first answer was lost finds the upload gone
        (NoSuchUpload): the object is then ours if it has the multipart ETag of
        exactly our parts.
        """
        parts = [{"ETag": e, "PartNumber": i + 1} for i, e in enumerate(etags)]
        attempts = 0

        def complete() -> dict:
            nonlocal attempts
            attempts += 1
            return self.client.complete_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id,
                                                         MultipartUpload={"Parts": parts})

        try:
            r = await self._call("complete_multipart", key, complete)
        except StoreError as exc:
            expected = multipart_etag(etags)
            if attempts > 1 and error_code(exc.cause) == "NoSuchUpload" and expected:
                info = await self.head(key)
                if info is not None and info.etag.strip('"') == expected:
                    log.info("completion of %s was done by an attempt whose answer was lost", key)
                    return info.etag
            raise
        return r.get("ETag", "")

    async def abort_multipart(self, key: str, upload_id: str) -> None:
        try:
            await self._call("abort_multipart", key, partial(
                self.client.abort_multipart_upload, Bucket=self.bucket, Key=key, UploadId=upload_id))
        except StoreError as exc:
            if http_status(exc.cause) != 404:
                raise

    async def list_multipart_uploads(self, prefix: str) -> list[Upload]:
        """Every unfinished multipart upload under `prefix`."""
        out: list[Upload] = []
        kw: dict[str, Any] = {"Bucket": self.bucket, "Prefix": prefix}
        while True:
            r = await self._call("list_multipart", prefix, partial(self.client.list_multipart_uploads, **kw))
            out.extend(Upload(u["Key"], u["UploadId"], u.get("Initiated")) for u in r.get("Uploads", []))
            if not r.get("IsTruncated"):
                return out
            kw["KeyMarker"] = r.get("NextKeyMarker", "")
            kw["UploadIdMarker"] = r.get("NextUploadIdMarker", "")

    async def copy(self, src: str, dst: str, size: int, metadata: dict[str, str] | None,
                   content_type: str | None, cache_control: str | None = None, if_match: str | None = None) -> str:
        """Server-side copy; `metadata` None keeps the source's. Above 5 GiB, part by part.

        A `cache_control` needs the metadata replaced, so it comes with `metadata`. With `if_match`
        the copy fails (HTTP 412) unless the source still has that ETag: what was checked is what is copied.
        Returns the new object's ETag as the server reports it ("" when it does not).
        """
        source = {"Bucket": self.bucket, "Key": src}
        if size <= MAX_SINGLE_COPY:
            kw: dict[str, Any] = {"Bucket": self.bucket, "Key": dst, "CopySource": source}
            if if_match:
                kw["CopySourceIfMatch"] = if_match
            if metadata is not None:
                kw.update(MetadataDirective="REPLACE", Metadata=metadata, ContentType=content_type or "")
                if cache_control:
                    kw["CacheControl"] = cache_control
            r = await self._call("copy", dst, partial(self.client.copy_object, **kw))
            return r.get("CopyObjectResult", {}).get("ETag", "")
        if metadata is None:
            info = await self.head(src)
            if info is None:
                raise StoreError("copy", src, FileNotFoundError(src), 2)
            metadata, content_type = info.metadata, info.content_type
        upload_id = await self.create_multipart(dst, metadata, content_type or "application/octet-stream",
                                                cache_control)
        ranges = [(i, s, min(size, s + COPY_PART_SIZE)) for i, s in enumerate(range(0, size, COPY_PART_SIZE), 1)]

        async def copy_part(number: int, start: int, end: int) -> str:
            r = await self._call("upload_part_copy", dst, partial(
                self.client.upload_part_copy, Bucket=self.bucket, Key=dst, UploadId=upload_id, PartNumber=number,
                CopySource=source, CopySourceRange=f"bytes={start}-{end - 1}",
                **({"CopySourceIfMatch": if_match} if if_match else {})))
            return r["CopyPartResult"]["ETag"]

        try:
            etags = await gather([partial(copy_part, n, s, e) for n, s, e in ranges], limit=8)
            return await self.complete_multipart(dst, upload_id, etags)
        except BaseException:
            with trio.CancelScope(shield=True):
                await self.abort_multipart(dst, upload_id)
            raise

    async def delete(self, key: str) -> None:
        await self._call("delete", key, partial(self.client.delete_object, Bucket=self.bucket, Key=key))

    async def copy_from(self, src_bucket: str, src: str, dst: str) -> str:
        """Server-side copy from another bucket on the same endpoint and account, metadata kept (up to 5 GiB).

        Returns the new object's ETag as the server reports it.
        """
        r = await self._call("copy", dst, partial(self.client.copy_object, Bucket=self.bucket, Key=dst,
                                                  CopySource={"Bucket": src_bucket, "Key": src}))
        return r.get("CopyObjectResult", {}).get("ETag", "")
