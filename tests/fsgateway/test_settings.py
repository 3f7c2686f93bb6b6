"""Layered settings of the checker and syncd: file < environment < flags, typed from the dataclass."""

from dataclasses import dataclass, field

import pytest

from fsgateway.daemon.config import SIZE, ConfigError, S3Options, load, parse_assignments


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
    from fsgateway.mount.options import ENV_PREFIX

    env = {"FSGATEWAY_STAT_TTL": "2", "FSGATEWAY_CHECKER_STATE_DIR": "/x", "FSGATEWAY_SYNCD_DELETE": "mirror",
           "FSGATEWAY_CONFIG": "/etc/x.toml"}
    assert from_environ(env, ENV_PREFIX) == {"stat_ttl": "2"}


def _daemons(conf: str, env: dict[str, str], flags: dict[str, str]):
    """(name, options) of the mount, the checker and syncd loaded from the same file, env and flags."""
    import argparse

    from checker.context import load_config
    from fsgateway.mount.options import load as load_mount
    from syncd.options import SyncdOptions

    mount_env = {f"FSGATEWAY_{k.upper()}": v for k, v in env.items()}
    checker_env = {f"FSGATEWAY_CHECKER_{k.upper()}": v for k, v in env.items()}
    syncd_env = {f"FSGATEWAY_SYNCD_{k.upper()}": v for k, v in env.items()}
    args = argparse.Namespace(config=conf, assignments=[f"{k}={v}" for k, v in flags.items()], bucket=None,
                              endpoint=None, prefix=None, state_dir=None, database=None)
    return [
        ("mount", load_mount("b", "/mnt", [",".join(f"{k}={v}" for k, v in flags.items())] if flags else [],
                             mount_env, conf, foreground=True)),
        ("checker", load_config(args, checker_env)),
        ("syncd", load(SyncdOptions(), "syncd", syncd_env, conf, parse_assignments(args.assignments)).validate()),
    ]


SHARED = ('[s3]\nbucket = "b"\nmax_connections = {}\nread_timeout = {}\nretry_deadline = {}\n{}'
          '[syncd]\nbackup_bucket = "bb"\n')


def test_the_same_s3_key_gives_the_same_value_in_every_daemon(tmp_path):
    conf = tmp_path / "f.toml"
    conf.write_text('[s3]\nbucket = "b"\n[syncd]\nbackup_bucket = "bb"\n')
    defaults = {name: (o.max_connections, o.connect_timeout, o.read_timeout, o.retry_deadline, o.region)
                for name, o in _daemons(str(conf), {}, {})}
    assert set(defaults.values()) == {(32, 5.0, 30.0, 60.0, "us-east-1")}, defaults
    conf.write_text(SHARED.format(12, '"7"', 9, 'url = "http://h:1"\nuse_path_request_style = true\n'))
    for name, o in _daemons(str(conf), {}, {}):
        assert (o.max_connections, o.read_timeout, o.retry_deadline, o.endpoint, o.path_style) == (
            12, 7.0, 9.0, "http://h:1", True), name
        settings = o.store_settings(None)
        assert (settings.max_connections, settings.read_timeout, settings.endpoint) == (12, 7.0, "http://h:1"), name


def test_precedence_file_then_environment_then_flags_in_every_daemon(tmp_path):
    conf = tmp_path / "f.toml"
    conf.write_text(SHARED.format(12, 7, 9, ""))
    for name, o in _daemons(str(conf), {"read_timeout": "8", "retry_deadline": "10"}, {"retry_deadline": "11"}):
        assert (o.max_connections, o.read_timeout, o.retry_deadline) == (12, 8.0, 11.0), name
