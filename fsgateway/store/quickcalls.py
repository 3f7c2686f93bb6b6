"""PutObject and ranged GetObject built and signed here, sent through the client's own connection pool.

Every small file is one PutObject and every read chunk one ranged GET, and
botocore's per-call machinery (parameter validation, endpoint rules, some thirty
events, serialisation, parsing) costs more CPU than the request it builds: a
4 KiB PUT took 2.0 ms of CPU through `put_object` and 1.3 ms this way, a 1 MiB
ranged GET 2.0–2.5 ms and 1.1 ms (bench/PROFILE.md). Only that machinery is
skipped; what decides the request on the wire is still botocore's:

* the object's URL is the bucket's URL as the client addresses it (path or
  virtual-host style, learned once from a presigned URL) plus the key, quoted
  as botocore quotes it;
* the signature is botocore's `S3SigV4Auth` over the client's credentials
  (refreshed as the client's are) and its `payload_signing_enabled` setting;
* the request goes through the client's HTTP session: its pool, TLS
  verification, proxies, timeouts and `Expect: 100-continue` handling;
* a refusal is parsed by botocore's own parser for the operation and raised as
  the `ClientError` the client would raise, so retries and errno mapping are
  unchanged; a network failure is the client's exception too.

When the client is not one this can mirror (another signature version, no
credentials, botocore internals renamed), `for_client` returns None and the
store makes botocore's calls as before.
"""

from __future__ import annotations

import http.client
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.exceptions import ClientError, ResponseStreamingError
from botocore.parsers import create_parser


def receive(stream: Any, length: object, view: memoryview) -> None:
    """Fill `view` with an answer's body, which must be exactly `length` bytes long.

    `stream` is urllib3's response: its `_fp`, http.client's, is read straight into
    `view` (urllib3's and botocore's `readinto` read into a new `bytes` and copy it).
    Read that way, urllib3 does not see the body end, so the connection is handed back
    to its pool here, and only after a whole body; after any failure it is closed, so a
    half-read answer never meets the next request. Any other readable body (botocore's,
    should its internals change) is read through its own `readinto`, then closed. A body
    shorter or longer than asked, or cut off, is a transient `ResponseStreamingError`.
    """
    raw_fp = getattr(stream, "_fp", None)
    fp = raw_fp if isinstance(raw_fp, http.client.HTTPResponse) else None
    released = False
    try:
        if length is None or int(str(length)) != len(view):  # a server that ignored Range sends it all
            raise ResponseStreamingError(error=f"answer of {length} bytes to a range of {len(view)}")
        readinto = fp.readinto if fp is not None else stream.readinto
        got = 0
        try:
            while got < len(view) and (n := readinto(view[got:])):
                got += n
        except (OSError, http.client.HTTPException) as exc:
            raise ResponseStreamingError(error=exc) from exc
        if got != len(view):
            raise ResponseStreamingError(error=f"short ranged GET: {got} of {len(view)} bytes")
        if fp is not None and fp.isclosed():
            stream.release_conn()  # the whole body was read: the connection serves the next request
            released = True
    finally:
        if not released:
            stream.close()


class QuickCalls:
    """Sends PutObject and ranged GetObject requests for one bucket of one client."""

    def __init__(self, client: Any, session: Any, credentials: Any, bucket_url: str) -> None:
        self.session = session
        self.credentials = credentials
        self.bucket_url = bucket_url  # ends with "/": the key follows
        self.config = client.meta.config
        self.region = client.meta.region_name
        model = client.meta.service_model
        self.outputs = {op: model.operation_model(op).output_shape for op in ("PutObject", "GetObject")}
        self.parser = create_parser("rest-xml")

    @classmethod
    def for_client(cls, client: Any, bucket: str) -> QuickCalls | None:
        """The quick path for `client`'s calls on `bucket`, or None where only botocore's own call is right."""
        try:
            signer = client._request_signer  # botocore internals: their absence means "use botocore's calls"
            session = client._endpoint.http_session
            credentials = signer._credentials
            version = signer.signature_version
        except AttributeError:
            return None
        if credentials is None or version != "s3v4":
            return None
        probe = "fsgateway-probe"
        url = client.generate_presigned_url("put_object", Params={"Bucket": bucket, "Key": probe}, ExpiresIn=60)
        base = url.partition("?")[0]
        if not base.endswith("/" + probe):
            return None
        return cls(client, session, credentials, base[:-len(probe)])

    def _send(self, method: str, key: str, headers: Mapping[str, str], body: bytes | None = None,
              stream: bool = False) -> Any:
        """The answer; unless `stream`, the session reads its body (and turns urllib3 errors into botocore ones)."""
        request = AWSRequest(method=method, url=self.bucket_url + quote(key, safe="/~"), data=body,
                             headers=dict(headers), stream_output=stream)
        request.context["client_config"] = self.config  # where S3SigV4Auth reads payload_signing_enabled
        S3SigV4Auth(self.credentials.get_frozen_credentials(), "s3", self.region).add_auth(request)
        return self.session.send(request.prepare())

    def _refusal(self, response: Any, operation: str) -> Exception:
        """The error botocore would raise for this answer; one whose body breaks off is a streaming error."""
        try:
            body = response.content
        except Exception as exc:  # urllib3's errors, from a streamed answer's body
            response.raw.close()
            return ResponseStreamingError(error=exc)
        parsed = self.parser.parse({"status_code": response.status_code, "headers": response.headers,
                                    "body": body}, self.outputs[operation])
        return ClientError(parsed, operation)

    def put(self, key: str, body: bytes, headers: Mapping[str, str]) -> str:
        """One PutObject of `body` with these headers; returns the ETag or raises the client's error."""
        response = self._send("PUT", key, headers, body)
        if not 200 <= response.status_code < 300:
            raise self._refusal(response, "PutObject")
        return str(response.headers.get("ETag", ""))

    def get_into(self, key: str, start: int, view: memoryview, if_match: str | None) -> None:
        """Bytes [start, start + len(view)) of `key`, from the socket straight into `view`.

        The connection goes back to the pool only after a complete body; after any
        failure it is closed, so a half-read answer never meets the next request."""
        headers = {"Range": f"bytes={start}-{start + len(view) - 1}"}
        if if_match:
            headers["If-Match"] = if_match
        response = self._send("GET", key, headers, stream=True)
        if response.status_code not in (200, 206):
            raise self._refusal(response, "GetObject")
        receive(response.raw, response.headers.get("Content-Length"), view)
