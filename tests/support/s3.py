"""The S3 server a test talks to, and bucket housekeeping."""

from __future__ import annotations

import contextlib
import os
import sys
from typing import Any

import boto3
from botocore.config import Config

from fsgateway.formats import feed


class S3Server:
    def __init__(self, endpoint: str, access_key: str, secret_key: str, name: str = "unknown",
                 ca_bundle: str | None = None) -> None:
        self.endpoint = endpoint
        self.access_key = access_key
        self.secret_key = secret_key
        self.ca_bundle = ca_bundle
        self.name = name

    @classmethod
    def from_environment(cls) -> S3Server | None:
        """The run's server as S3_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY (S3_CA_BUNDLE for TLS)
        name it, as scripts/run-tests sets them; None if S3_ENDPOINT_URL is not set."""
        endpoint = os.environ.get("S3_ENDPOINT_URL")
        if not endpoint:
            return None
        return cls(endpoint, os.environ["AWS_ACCESS_KEY_ID"], os.environ["AWS_SECRET_ACCESS_KEY"],
                   os.environ.get("S3_SERVER", "unknown"), os.environ.get("S3_CA_BUNDLE") or None)

    def client(self, **overrides: str):
        return boto3.client(
            "s3", endpoint_url=overrides.get("endpoint", self.endpoint),
            aws_access_key_id=overrides.get("access_key", self.access_key),
            aws_secret_access_key=overrides.get("secret_key", self.secret_key),
            region_name="us-east-1", verify=self.ca_bundle if self.ca_bundle else None,
            config=Config(s3={"addressing_style": "path"}, request_checksum_calculation="when_required",
                          response_checksum_validation="when_required", retries={"max_attempts": 2}),
        )

    def store(self, bucket: str, endpoint: str | None = None, deadline: float = 10):
        """The project's own client of `bucket` (through `endpoint`, a fault proxy, if given)."""
        from fsgateway.store.client import ObjectStore, StoreSettings
        from fsgateway.store.credentials import Keys

        return ObjectStore(StoreSettings(bucket=bucket, endpoint=endpoint or self.endpoint, region="us-east-1",
                                         path_style=True, keys=Keys(self.access_key, self.secret_key), profile=None,
                                         verify=self.ca_bundle or True, max_connections=4, connect_timeout=10,
                                         read_timeout=max(30, deadline), retry_deadline=deadline))


def user_keys(s3, bucket: str, prefix: str = "") -> list[str]:
    """The bucket's keys without the gateway's own (`.fsgateway/`: staging uploads, the change feed)."""
    return [o["Key"] for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
            for o in page.get("Contents", []) if not o["Key"].startswith(".fsgateway/")]


def empty_bucket(s3, bucket: str) -> None:
    """Abort every upload and delete every object, a listing page (up to 1,000 keys) per DeleteObjects."""
    for up in s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []):
        s3.abort_multipart_upload(Bucket=bucket, Key=up["Key"], UploadId=up["UploadId"])
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        keys = [{"Key": obj["Key"]} for obj in page.get("Contents", [])]
        if not keys:
            continue
        r = s3.delete_objects(Bucket=bucket, Delete={"Objects": keys, "Quiet": True})
        if r.get("Errors"):
            raise RuntimeError(f"could not delete from {bucket}: {r['Errors'][:3]}")


def remove_bucket(client, name: str) -> None:
    """Delete a test's bucket with its contents and policy; if the server is down, say so and go on."""
    with contextlib.suppress(Exception):  # most buckets have no policy
        client.delete_bucket_policy(Bucket=name)
    try:
        empty_bucket(client, name)
        client.delete_bucket(Bucket=name)
    except Exception as exc:  # a fault test may have left the server down; leave the bucket
        print(f"could not remove bucket {name}: {exc}", file=sys.stderr)


def feed_events(s3: Any, bucket: str) -> list[feed.Event]:
    """Every event of the change feed's journal objects in `bucket`."""
    out: list[feed.Event] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=feed.FEED_PREFIX):
        for obj in page.get("Contents", []):
            out.extend(feed.decode(s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()).events)
    return out
