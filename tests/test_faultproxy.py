"""The fault proxy itself, against the real S3 server: each fault does what it says."""

from __future__ import annotations

import threading

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError, ConnectionClosedError, EndpointConnectionError, ResponseStreamingError

from tests.support.faultproxy import s3_kind
from tests.support.process import wait_for


def client_via(server, proxy):
    return boto3.client("s3", endpoint_url=proxy.endpoint, aws_access_key_id=server.access_key,
                        aws_secret_access_key=server.secret_key, region_name="us-east-1",
                        config=Config(s3={"addressing_style": "path"}, read_timeout=20,
                                      retries={"total_max_attempts": 1, "mode": "standard"},
                                      request_checksum_calculation="when_required",
                                      response_checksum_validation="when_required"))


def test_s3_kind_names_operations():
    assert s3_kind("PUT", "/b/a/k?partNumber=1&uploadId=x", {}) == ("upload_part", "a/k")
    assert s3_kind("POST", "/b/k?uploads", {}) == ("create_multipart", "k")
    assert s3_kind("POST", "/b/k?uploadId=x", {}) == ("complete_multipart", "k")
    assert s3_kind("PUT", "/b/k", {"x-amz-copy-source": "b/s"}) == ("copy", "k")
    assert s3_kind("GET", "/b?list-type=2&prefix=", {}) == ("list", "")


def test_each_fault(server, proxy, bucket, s3):
    c = client_via(server, proxy)
    c.put_object(Bucket=bucket, Key="k", Body=b"through")
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"through"

    proxy.add("status", "put", times=1)
    with pytest.raises(ClientError) as e:
        c.put_object(Bucket=bucket, Key="k", Body=b"x" * 100_000)
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 503

    proxy.add("drop", "put", key="^dropped$", times=1)
    with pytest.raises((ConnectionClosedError, EndpointConnectionError)):
        c.put_object(Bucket=bucket, Key="dropped", Body=b"acted" * 30_000)
    assert s3.get_object(Bucket=bucket, Key="dropped")["Body"].read() == b"acted" * 30_000  # the server acted

    s3.put_object(Bucket=bucket, Key="big", Body=b"z" * 1_000_000)
    proxy.add("reset", "get", after=50_000, times=1)
    with pytest.raises(Exception):  # noqa: B017 - botocore raises one of several for a reset mid-body
        c.get_object(Bucket=bucket, Key="big")["Body"].read()
    proxy.add("cut", "get", after=50_000, times=1)
    with pytest.raises(ResponseStreamingError):  # the body ends early, without a reset
        c.get_object(Bucket=bucket, Key="big")["Body"].read()

    proxy.add("refuse", "head", times=1)
    with pytest.raises((ConnectionClosedError, EndpointConnectionError)):
        c.head_object(Bucket=bucket, Key="k")

    proxy.refuse_all()
    with pytest.raises(EndpointConnectionError):
        c.head_object(Bucket=bucket, Key="k")
    proxy.accept_all()
    assert c.head_object(Bucket=bucket, Key="k")["ContentLength"] == 7

    rule = proxy.add("stall", "get")
    result: list[bytes] = []
    t = threading.Thread(target=lambda: result.append(c.get_object(Bucket=bucket, Key="k")["Body"].read()))
    t.start()
    wait_for(lambda: proxy.seen("get", "stall"), 10, "the GET to be stalled")
    assert not result
    proxy.remove(rule)
    proxy.release()
    t.join(timeout=20)
    assert result == [b"through"]
