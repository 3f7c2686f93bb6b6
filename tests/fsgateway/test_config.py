"""Unit tests of configuration parsing and precedence."""

from __future__ import annotations

import pytest

from fsgateway.daemon.config import ConfigError
from fsgateway.mount import options


def load(opts: list[str], env: dict | None = None, file: str | None = None, tmp_path=None):
    path = None
    if file is not None:
        path = tmp_path / "c.toml"
        path.write_text(file)
    return options.load("bkt:/fw/in", "/mnt", opts, env or {}, str(path) if path else None, foreground=True)


def test_s3fs_style_options_and_aliases():
    cfg = load(["url=http://h:1,use_path_request_style,allow_other", "umask=0027,uid=5", "cache_size=2G",
                "_netdev,nofail,rw,nosuid", "no_verify_ssl"])
    assert (cfg.bucket, cfg.prefix) == ("bkt", "fw/in/")
    assert cfg.endpoint == "http://h:1" and cfg.path_style and cfg.allow_other
    assert (cfg.umask, cfg.uid, cfg.cache_size, cfg.verify_ssl) == (0o027, 5, 2 << 30, False)


def test_generic_mount_options_are_ignored_as_written():
    """fstab's `x-systemd.automount` was rejected: it was looked up after `-` became `_`."""
    cfg = load(["x-systemd.automount,_netdev,defaults,readonly,parallel_count=4"])
    assert (cfg.ro, cfg.parallel) == (True, 4)


def test_precedence_file_then_environment_then_flags(tmp_path):
    file = '[s3]\nendpoint = "http://file"\n[mount]\nstat_ttl = 9\nparallel = 3\n'
    cfg = load(["parallel=4"], {"FSGATEWAY_STAT_TTL": "2", "FSGATEWAY_PARALLEL": "6"}, file, tmp_path)
    assert (cfg.endpoint, cfg.stat_ttl, cfg.parallel) == ("http://file", 2.0, 4)


def test_feed_log_options():
    cfg = load(["feed_flush=0.5", "feed_wal_size=16M"])
    assert (cfg.feed_flush, cfg.feed_wal_size) == (0.5, 16 << 20)
    assert (load([]).feed_flush, load([]).feed_wal_size) == (1.0, 64 << 20)


def test_write_buffer_of_one_part_is_enough_since_parts_are_spooled():
    cfg = load(["multipart_size=16M", "write_buffer_size=16M"])
    assert (cfg.multipart_size, cfg.write_buffer_size) == (16 << 20, 16 << 20)
    assert load([]).write_buffer_size == load([]).multipart_size


@pytest.mark.parametrize(("opts", "message"), [
    (["nosuch=1"], "unknown option 'nosuch'"),
    (["multipart_size=1M"], "at least 5M"),
    (["cache_size=lots"], "not a size"),
    (["parallel=0"], "parallel must be"),
    (["log_format=xml"], "text or json"),
    (["prefix=data"], "unknown option 'prefix'"),
    (["endpoint"], "needs a value"),
    (["feed_flush=-1"], "feed_flush must be >= 0"),
    (["feed_wal_size=64K"], "feed_wal_size at least 1M"),
    (["feed_flush=soon"], "feed_flush"),
    (["multipart_size=16M", "write_buffer_size=8M"], "write_buffer_size must hold at least one part"),
])
def test_bad_values_give_one_line_reasons(opts, message):
    with pytest.raises(ConfigError, match=message):
        load(opts)


def test_bad_toml_names_the_file(tmp_path):
    with pytest.raises(ConfigError, match="config file"):
        load([], file="[s3\n", tmp_path=tmp_path)
