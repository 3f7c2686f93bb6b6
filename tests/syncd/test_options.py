"""syncd's options: file < environment < --set, validation, the backup connection."""

from __future__ import annotations

import pytest

from fsgateway.daemon.config import ConfigError, load
from fsgateway.store.credentials import Keys
from syncd.options import SyncdOptions

TOML = """
[s3]
bucket = "firmware"
endpoint = "http://primary:7480"
[syncd]
backup_bucket = "firmware-backup"
delete = "mirror"
max_delete = 5
include = ["incoming/", "*.bin"]
bandwidth_limit = "10M"
"""


def test_layers_and_types(tmp_path):
    cfg = tmp_path / "f.toml"
    cfg.write_text(TOML)
    o = load(SyncdOptions(), "syncd", {"FSGATEWAY_SYNCD_MAX_DELETE": "7"}, str(cfg),
             {"concurrency": "3", "exclude": "a/,b/"}).validate()
    assert (o.bucket, o.backup_bucket, o.delete, o.max_delete, o.concurrency) == (
        "firmware", "firmware-backup", "mirror", 7, 3)
    assert o.include == ("incoming/", "*.bin") and o.exclude == ("a/", "b/")
    assert o.bandwidth_limit == 10 << 20 and o.metrics_address == "127.0.0.1:9879"
    assert o.state_dir == "/var/lib/fsgateway/syncd"


@pytest.mark.parametrize(("flags", "message"), [
    ({"bucket": "a"}, "no backup bucket"),
    ({"backup_bucket": "b"}, "no primary bucket"),
    ({"bucket": "a", "backup_bucket": "a"}, "is the primary bucket"),
    ({"bucket": "a", "backup_bucket": "b", "delete": "sometimes"}, "delete must be keep or mirror"),
    ({"bucket": "a", "backup_bucket": "b", "part_size": "1M"}, "part_size"),
])
def test_bad_configurations_are_one_line_reasons(flags, message):
    with pytest.raises(ConfigError, match=message):
        load(SyncdOptions(), "syncd", {}, None, flags).validate()


def test_backup_connection_defaults_to_the_primary():
    o = SyncdOptions(bucket="a", backup_bucket="b", endpoint="http://p", ca_bundle="/ca.pem")
    s = o.backup_store_settings(Keys("k", "s"))
    assert (s.bucket, s.endpoint, s.verify, s.keys) == ("b", "http://p", "/ca.pem", Keys("k", "s"))
    o = SyncdOptions(bucket="a", backup_bucket="b", endpoint="http://p", backup_endpoint="http://q",
                     backup_region="eu", backup_passwd_file="/x")
    s = o.backup_store_settings(None)
    assert (s.endpoint, s.region) == ("http://q", "eu") and o.backup_has_own_credentials()
