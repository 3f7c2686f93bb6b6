"""A fault-injecting HTTP proxy between a daemon and a real S3 server, for fault tests.

It listens on 127.0.0.1 (an ephemeral port) and forwards to the server. Each
client connection carries one request: the proxy adds `Connection: close`, so
every request can be judged on its own (boto3 opens a new connection for the
next one). Rules, matched in order against each request's S3 operation and key,
make it misbehave as a network or a server does:

* `refuse`  - reset the connection before anything is read (a crashing server);
* `stall`   - hold the request unanswered until `release()` (or `max_stall`);
* `status`  - answer with an HTTP error (503 by default) without forwarding;
* `reset`   - forward, then reset the connection after `after` bytes of the answer;
* `cut`     - forward, then close the connection cleanly after `after` bytes (a short body);
* `drop`    - forward, let the server act, then close without the answer;
* `flip`    - forward with one byte of the request body inverted (the one at `after`), as
              a faulty network card or middlebox would: the server must refuse it;
* `flip_answer` - forward, inverting one byte of the answer (the one at `after`, counted from
              its status line; a negative `after` counts back from the end of its body):
              nothing on the way tells, the client's own checksum must;
* `pass`    - forward untouched (an exception to later rules).

`refuse_all()` closes the listening socket (connect() gets ECONNREFUSED) until
`accept_all()`. Everything is bounded: at most `max_connections` connections,
64 KiB buffers, stalls end after `max_stall` seconds, a request log of the last
10,000 requests. Plain HTTP only (TLS cannot be judged per request).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
import struct
import threading
from collections import deque
from dataclasses import dataclass, field
from urllib.parse import parse_qs, unquote, urlsplit

BUF = 64 << 10
ACTIONS = ("refuse", "stall", "status", "reset", "cut", "drop", "flip", "flip_answer", "pass")


def s3_kind(method: str, target: str, headers: dict[str, str]) -> tuple[str, str]:
    """The S3 operation of a path-style request and its key: ("upload_part", "dir/f")."""
    url = urlsplit(target)
    query = parse_qs(url.query, keep_blank_values=True)
    _, _, key = unquote(url.path).lstrip("/").partition("/")
    if method == "PUT":
        if "partNumber" in query:
            kind = "upload_part_copy" if "x-amz-copy-source" in headers else "upload_part"
        else:
            kind = "copy" if "x-amz-copy-source" in headers else "put"
    elif method == "POST":
        kind = "create_multipart" if "uploads" in query else "complete_multipart" if "uploadId" in query else "post"
    elif method == "DELETE":
        kind = "abort_multipart" if "uploadId" in query else "delete"
    elif method == "GET":
        kind = "list_multipart" if "uploads" in query else "list" if not key else "get"
    elif method == "HEAD":
        kind = "head_bucket" if not key else "head"
    else:
        kind = method.lower()
    return kind, key


@dataclass
class Rule:
    action: str
    kinds: frozenset[str] | None = None  # None: every operation
    key: re.Pattern[str] | None = None
    times: int | None = None  # None: until removed
    status: int = 503
    after: int = 0  # `reset`, `cut`: answer bytes let through first; `flip`, `flip_answer`: offset of the byte
    hits: int = 0

    def matches(self, kind: str, key: str) -> bool:
        return ((self.kinds is None or kind in self.kinds) and (self.key is None or bool(self.key.search(key)))
                and (self.times is None or self.hits < self.times))


@dataclass
class Seen:
    kind: str
    key: str
    action: str
    status: int | None = None  # the server's status line, when forwarded and read
    expect: str | None = None  # the request's `Expect` header, as sent


@dataclass
class FaultProxy:
    upstream_host: str
    upstream_port: int
    max_connections: int = 256
    max_stall: float = 120.0
    rules: list[Rule] = field(default_factory=list)
    log: deque[Seen] = field(default_factory=lambda: deque(maxlen=10_000))

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="faultproxy", daemon=True)
        self._server: asyncio.base_events.Server | None = None
        self._released = asyncio.Event()
        self._slots = asyncio.Semaphore(self.max_connections)
        self._tasks: set[asyncio.Task] = set()
        self.port = 0

    @classmethod
    def to(cls, endpoint: str, **kw: object) -> FaultProxy:
        url = urlsplit(endpoint)
        if url.scheme != "http":
            raise ValueError("the fault proxy judges plain HTTP requests only")
        return cls(url.hostname or "127.0.0.1", url.port or 80, **kw)  # type: ignore[arg-type]

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # ------------------------------------------------------------ control (any thread)
    def start(self) -> FaultProxy:
        self._thread.start()
        self._run(self._listen())
        return self

    def stop(self) -> None:
        self._run(self._close_listener())
        self._run(self._cancel_connections())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)

    def add(self, action: str, kinds: str | tuple[str, ...] | None = None, key: str | None = None,
            times: int | None = None, status: int = 503, after: int = 0) -> Rule:
        """Misbehave on matching requests (`times` of them, or until `remove`); rules apply in order."""
        if action not in ACTIONS:
            raise ValueError(f"unknown action {action!r}")
        kinds_set = frozenset([kinds] if isinstance(kinds, str) else kinds) if kinds else None
        rule = Rule(action, kinds_set, re.compile(key) if key else None, times, status, after)
        with self._lock:
            self.rules.append(rule)
        return rule

    def remove(self, rule: Rule) -> None:
        with self._lock:
            self.rules.remove(rule)

    def clear(self) -> None:
        """No more faults; stalled requests go on."""
        with self._lock:
            self.rules.clear()
        self.release()

    def release(self) -> None:
        """Let every stalled request through (it is then forwarded)."""
        self._loop.call_soon_threadsafe(self._released.set)

    def refuse_all(self) -> None:
        self._run(self._close_listener())

    def accept_all(self) -> None:
        self._run(self._listen())

    def seen(self, kind: str | None = None, action: str | None = None) -> list[Seen]:
        with self._lock:
            return [s for s in self.log if (kind is None or s.kind == kind) and (action is None or s.action == action)]

    def _run(self, coro) -> object:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=10)

    # ------------------------------------------------------------ the loop thread
    async def _listen(self) -> None:
        if self._server is not None:
            return
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self.port))
        self.port = sock.getsockname()[1]
        self._server = await asyncio.start_server(self._handle, sock=sock, limit=BUF)

    async def _cancel_connections(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _close_listener(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    def _choose(self, kind: str, key: str) -> Rule | None:
        with self._lock:
            for rule in self.rules:
                if rule.matches(kind, key):
                    rule.hits += 1
                    return rule
        return None

    def _record(self, seen: Seen) -> None:
        with self._lock:
            self.log.append(seen)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        self._tasks.add(task)  # type: ignore[arg-type]
        task.add_done_callback(self._tasks.discard)  # type: ignore[union-attr]
        async with self._slots:
            try:
                await self._serve(reader, writer)
            except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
                _reset(writer)
            finally:
                writer.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        request_line, *header_lines = head.decode("latin-1").split("\r\n")[:-2]
        method, target, _ = request_line.split(" ", 2)
        headers = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in header_lines)}
        kind, key = s3_kind(method, target, headers)
        rule = self._choose(kind, key)
        action = rule.action if rule else "pass"
        seen = Seen(kind, key, action, expect=headers.get("expect"))
        self._record(seen)
        if action == "refuse":
            _reset(writer)
            return
        if action == "stall":
            try:
                await asyncio.wait_for(self._released.wait(), self.max_stall)
            except TimeoutError:
                _reset(writer)
                return
        if action == "status":
            await self._answer_status(reader, writer, headers, rule.status)  # type: ignore[union-attr]
            return
        up_reader, up_writer = await asyncio.open_connection(self.upstream_host, self.upstream_port, limit=BUF)
        try:
            kept = [h for h in header_lines if not h.lower().startswith(("connection:", "keep-alive:", "expect:"))]
            if headers.get("expect", "").lower() == "100-continue":  # answered here, so `drop` gets the body too
                writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            up_writer.write(("\r\n".join([request_line, *kept, "Connection: close"]) + "\r\n\r\n").encode("latin-1"))
            flip_at = rule.after if action == "flip" else None  # type: ignore[union-attr]
            to_server = asyncio.create_task(_pump(reader, up_writer, None, flip_at=flip_at))
            if action == "drop":
                await _drain_answer(up_reader, seen)  # the server acts; its answer is lost
                to_server.cancel()
                _reset(writer)
                return
            limit = rule.after if action in ("reset", "cut") else None  # type: ignore[union-attr]
            spoil_at = rule.after if action == "flip_answer" else None  # type: ignore[union-attr]
            await _pump(up_reader, writer, limit, seen, flip_at=spoil_at)
            to_server.cancel()
            if action == "reset":
                _reset(writer)
        finally:
            up_writer.close()

    async def _answer_status(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                             headers: dict[str, str], status: int) -> None:
        """An S3 error answer; the request body is read first unless the client waits for 100-continue."""
        if headers.get("expect", "").lower() != "100-continue":
            remaining = int(headers.get("content-length", "0") or 0)
            while remaining > 0:
                remaining -= len(await reader.readexactly(min(BUF, remaining)))
        code = "ServiceUnavailable" if status == 503 else "InternalError"
        body = f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>{code}</Code><Message>injected fault' \
               f"</Message></Error>".encode()
        writer.write(f"HTTP/1.1 {status} Injected\r\nContent-Type: application/xml\r\nContent-Length: {len(body)}"
                     f"\r\nConnection: close\r\n\r\n".encode() + body)
        await writer.drain()


async def _pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter, limit: int | None,
                seen: Seen | None = None, flip_at: int | None = None) -> None:
    """Copy until EOF, or until `limit` bytes went through; notes the status line on the way.

    With `flip_at`, the byte at that offset of the stream is inverted on its way."""
    sent = 0
    while limit is None or sent < limit:
        data = await src.read(BUF if limit is None else min(BUF, limit - sent))
        if not data:
            break
        if seen is not None and seen.status is None and sent == 0:
            seen.status = _status_of(data)
        if flip_at is not None and flip_at < 0 and sent == 0:  # from the end: the head says where that is
            flip_at += _answer_length(data)
        if flip_at is not None and sent <= flip_at < sent + len(data):
            i = flip_at - sent
            data = data[:i] + bytes([data[i] ^ 0xFF]) + data[i + 1:]
        dst.write(data)
        await dst.drain()
        sent += len(data)


async def _drain_answer(src: asyncio.StreamReader, seen: Seen) -> None:
    first = True
    while data := await src.read(BUF):
        if first:
            seen.status, first = _status_of(data), False


def _answer_length(first: bytes) -> int:
    """Head plus body length of an answer, from its first bytes (which hold its whole head)."""
    head, _, _ = first.partition(b"\r\n\r\n")
    found = re.search(rb"(?im)^content-length:\s*(\d+)", head)
    return len(head) + 4 + (int(found.group(1)) if found else 0)


def _status_of(data: bytes) -> int | None:
    parts = data.split(b" ", 2)
    return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else None


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with RST instead of FIN: the peer sees 'connection reset'."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):  # already closed by the peer
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()
