"""Unit tests of configuration parsing and precedence, credentials and retry policy."""

from __future__ import annotations

import errno
import os
import random

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError

from fsgateway import config, credentials
from fsgateway.config import ConfigError
from fsgateway.retry import Backoff, errno_for, is_transient


def load(opts: list[str], env: dict | None = None, file: str | None = None, tmp_path=None):
    path = None
    if file is not None:
        path = tmp_path / "c.toml"
        path.write_text(file)
    return config.load("bkt:/fw/in", "/mnt", opts, env or {}, str(path) if path else None, foreground=True)


def test_s3fs_style_options_and_aliases():
    cfg = load(["url=http://h:1,use_path_request_style,allow_other", "umask=0027,uid=5", "cache_size=2G",
                "_netdev,nofail,rw,nosuid", "no_verify_ssl"])
    assert (cfg.bucket, cfg.prefix) == ("bkt", "fw/in/")
    assert cfg.endpoint == "http://h:1" and cfg.path_style and cfg.allow_other
    assert (cfg.umask, cfg.uid, cfg.cache_size, cfg.verify_ssl) == (0o027, 5, 2 << 30, False)


def test_precedence_file_then_environment_then_flags(tmp_path):
    file = '[s3]\nendpoint = "http://file"\n[mount]\nstat_ttl = 9\nparallel = 3\n'
    cfg = load(["parallel=4"], {"FSGATEWAY_STAT_TTL": "2", "FSGATEWAY_PARALLEL": "6"}, file, tmp_path)
    assert (cfg.endpoint, cfg.stat_ttl, cfg.parallel) == ("http://file", 2.0, 4)


@pytest.mark.parametrize(("opts", "message"), [
    (["nosuch=1"], "unknown option 'nosuch'"),
    (["multipart_size=1M"], "at least 5M"),
    (["cache_size=lots"], "not a size"),
    (["parallel=0"], "parallel must be"),
    (["log_format=xml"], "text or json"),
])
def test_bad_values_give_one_line_reasons(opts, message):
    with pytest.raises(ConfigError, match=message):
        load(opts)


def test_bad_toml_names_the_file(tmp_path):
    with pytest.raises(ConfigError, match="config file"):
        load([], file="[s3\n", tmp_path=tmp_path)


def test_passwd_parsing_prefers_bucket_line():
    text = "# c\nAK:SK\nother:A2:S2\nbkt:A3:S3\n"
    assert credentials.parse_passwd(text, "bkt") == credentials.Keys("A3", "S3")
    assert credentials.parse_passwd(text, "x") == credentials.Keys("AK", "SK")
    with pytest.raises(credentials.CredentialsError):
        credentials.parse_passwd("only-one-field\n", "bkt")


def test_passwd_file_must_be_private_and_secret_never_printed(tmp_path):
    p = tmp_path / "pw"
    p.write_text("AKIAEXAMPLE:supersecret\n")
    p.chmod(0o640)
    with pytest.raises(credentials.CredentialsError, match="group/other"):
        credentials.read_passwd_file(str(p), "b")
    os.chmod(p, 0o600)
    keys = credentials.read_passwd_file(str(p), "b")
    assert "supersecret" not in repr(keys)


def _client_error(code: str, status: int) -> ClientError:
    return ClientError({"Error": {"Code": code}, "ResponseMetadata": {"HTTPStatusCode": status}}, "Op")


def test_retry_classification():
    assert is_transient(_client_error("SlowDown", 503))
    assert is_transient(_client_error("InternalError", 500))
    assert is_transient(EndpointConnectionError(endpoint_url="http://x"))
    assert not is_transient(_client_error("NoSuchKey", 404))
    assert not is_transient(_client_error("AccessDenied", 403))
    assert errno_for(_client_error("NoSuchKey", 404)) == errno.ENOENT
    assert errno_for(_client_error("AccessDenied", 403)) == errno.EACCES
    assert errno_for(_client_error("PreconditionFailed", 412)) == errno.ESTALE
    assert errno_for(_client_error("InternalError", 500)) == errno.EIO


def test_backoff_is_jittered_and_capped():
    b = Backoff(base=0.1, cap=2.0)
    rng = random.Random(1)
    delays = [b.delay(a, rng) for a in range(40)]
    assert all(0 <= d <= 2.0 for d in delays)
    assert len(set(delays)) == len(delays)
    assert max(b.delay(0, random.Random(i)) for i in range(100)) <= 0.1
