"""Layered settings of the checker and syncd: file < environment < flags, typed from the dataclass."""

from dataclasses import dataclass, field

import pytest

from fsgateway.daemon.config import ConfigError
from fsgateway.daemon.settings import SIZE, S3Options, load, parse_assignments


@dataclass(frozen=True)
class DemoConfig(S3Options):
    state_dir: str = "/var/lib/demo"
    interval: float = 30.0
    cap: int = field(default=1 << 20, metadata=SIZE)
    models: tuple[str, ...] = ()
    dry_run: bool = False


def test_precedence_file_env_flags(tmp_path):
    conf = tmp_path / "f.toml"
    conf.write_text('[s3]\nendpoint = "http://file"\nbucket = "b1"\n[demo]\ninterval = 5\ncap = "2M"\n'
                    'models = ["a", "b"]\n[mount]\nstat_ttl = 1\n')
    env = {"FSGATEWAY_DEMO_INTERVAL": "7", "FSGATEWAY_STAT_TTL": "3", "FSGATEWAY_DEMO_DRY_RUN": "yes"}
    cfg = load(DemoConfig(), "demo", env, str(conf), parse_assignments(["bucket=b2"]))
    assert (cfg.endpoint, cfg.bucket, cfg.interval, cfg.cap, cfg.models, cfg.dry_run) == (
        "http://file", "b2", 7.0, 2 << 20, ("a", "b"), True)
    assert cfg.store_settings(None).bucket == "b2"


def test_unknown_and_bad_values_name_their_origin(tmp_path):
    with pytest.raises(ConfigError, match=r"unknown option 'nope' .*environment"):
        load(DemoConfig(), "demo", {"FSGATEWAY_DEMO_NOPE": "1"}, None, {})
    with pytest.raises(ConfigError, match="bad value for interval"):
        load(DemoConfig(), "demo", {}, None, {"interval": "soon"})
    with pytest.raises(ConfigError, match="NAME=VALUE"):
        parse_assignments(["novalue"])


def test_mount_ignores_the_other_daemons_environment():
    from fsgateway.daemon.config import from_environ

    env = {"FSGATEWAY_STAT_TTL": "2", "FSGATEWAY_CHECKER_STATE_DIR": "/x", "FSGATEWAY_SYNCD_DELETE": "mirror"}
    assert from_environ(env) == {"stat_ttl": "2"}
