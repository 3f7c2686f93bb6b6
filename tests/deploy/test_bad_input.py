"""Bad values end in one line naming the option and a non-zero exit, in every command, never a traceback.

No server is needed: every value is checked before anything uses it (no S3
request, no logging set-up, no socket, no fork).
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from fsgateway.daemon import config
from fsgateway.mount import options
from syncd.options import SyncdOptions

COMMANDS = {
    "fsgateway": lambda tmp: ["fsgateway", "bucket", str(tmp / "mnt"), "-f"],
    "fsgateway (background)": lambda tmp: ["fsgateway", "bucket", str(tmp / "mnt")],
    "fsgateway-checker": lambda tmp: ["checker", "run"],
    "fsgateway-syncd": lambda tmp: ["syncd", "once"],
    "fsgateway-fw": lambda tmp: ["checker.fw", "verdicts"],
}
MODULES = {"fsgateway": "fsgateway", "checker": "checker", "syncd": "syncd", "checker.fw": "checker.fw"}

# [s3] value -> a word the message must contain
BAD_S3_VALUES = {
    ("endpoint", "s3.example.net"): "https://s3.example.net",
    ("endpoint", "ftp://s3.example.net"): "endpoint",
    ("endpoint", "http://127.0.0.1:99999"): "endpoint",
    ("profile", "no-such-profile"): "profile",
    ("log_level", "infoo"): "log_level",
    ("region", "us east 1"): "region",
    ("metrics_address", "127.0.0.1:70000"): "metrics_address",
    ("metrics_address", "9877"): "metrics_address",
    ("passwd_file", "{tmp}"): "passwd_file",
    ("ca_bundle", "{tmp}/missing.pem"): "ca_bundle",
    ("connect_timeout", "0"): "connect_timeout",
    ("max_connections", "0"): "max_connections",
    ("log_format", "xml"): "log_format",
}


def toml(sections: dict[str, dict[str, str]]) -> str:
    return "".join(f"[{name}]\n" + "".join(f'{k} = "{v}"\n' for k, v in table.items())
                   for name, table in sections.items())


def run(command: str, tmp, sections: dict[str, dict[str, str]]) -> subprocess.CompletedProcess:
    (tmp / "mnt").mkdir(exist_ok=True)
    passwd = tmp / "passwd"
    passwd.write_text("access:secret\n")
    passwd.chmod(0o600)
    base = {"s3": {"bucket": "bucket", "endpoint": "http://127.0.0.1:9", "path_style": "true",
                   "passwd_file": str(passwd)},
            "mount": {"cache_dir": str(tmp / "cache")}, "checker": {"state_dir": str(tmp / "checker")},
            "syncd": {"backup_bucket": "backup", "state_dir": str(tmp / "syncd")}}
    for name, table in sections.items():
        base.setdefault(name, {}).update(table)
    (tmp / "c.toml").write_text(toml(base))
    module, *args = COMMANDS[command](tmp)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "FSGATEWAY_"))}
    return subprocess.run([sys.executable, "-m", MODULES[module], *args, "--config", str(tmp / "c.toml")],
                          capture_output=True, text=True, timeout=60, env={**env, "AWS_CONFIG_FILE": "/nonexistent"})


def assert_one_line_error(r: subprocess.CompletedProcess, word: str) -> None:
    assert r.returncode != 0, r.stdout + r.stderr
    assert "Traceback" not in r.stderr, r.stderr
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and word in lines[0], r.stderr


@pytest.mark.parametrize("command", list(COMMANDS))
@pytest.mark.parametrize(("name", "value"), list(BAD_S3_VALUES))
def test_a_bad_shared_value_is_one_line_naming_it(command, name, value, tmp_path):
    r = run(command, tmp_path, {"s3": {name: value.format(tmp=tmp_path)}})
    assert_one_line_error(r, BAD_S3_VALUES[(name, value)])


@pytest.mark.parametrize("background", [False, True])
def test_an_unusable_cache_dir_reaches_the_terminal(background, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    r = run("fsgateway (background)" if background else "fsgateway", tmp_path,
            {"mount": {"cache_dir": str(blocker / "cache")}})
    assert_one_line_error(r, "cache_dir")


def test_mounting_over_a_non_empty_directory_is_refused_without_nonempty(tmp_path):
    (tmp_path / "mnt").mkdir()
    (tmp_path / "mnt" / "precious").write_text("would be hidden")
    r = run("fsgateway", tmp_path, {})
    assert_one_line_error(r, "nonempty")
    # With -o nonempty the check passes and start-up goes on to the (unreachable) endpoint.
    r = run("fsgateway", tmp_path, {"mount": {"nonempty": "true", "retry_deadline": "1"}})
    assert r.returncode == 1 and "nonempty" not in r.stderr and "127.0.0.1:9" in r.stderr, r.stderr


@pytest.mark.parametrize("name", ["backup_endpoint", "backup_region", "backup_profile", "backup_passwd_file"])
def test_syncd_checks_the_backup_connection_values_too(name, tmp_path):
    value = {"backup_endpoint": "backup.example.net", "backup_region": "eu west",
             "backup_profile": "no-such-profile", "backup_passwd_file": str(tmp_path)}[name]
    r = run("fsgateway-syncd", tmp_path, {"syncd": {name: value}})
    assert_one_line_error(r, name)


@pytest.mark.parametrize(("command", "section", "name", "value"), [
    ("fsgateway-checker", "checker", "database", "mysql://db/firmware"),
    ("fsgateway-fw", "checker", "database", "mysql://db/firmware"),  # not a new SQLite file named "mysql:"
    ("fsgateway-checker", "checker", "timestamp_max_age", "-5"),
    ("fsgateway-checker", "checker", "pending_deadline", "soon"),
    ("fsgateway-syncd", "syncd", "feed_poll_interval", "0"),
    ("fsgateway-syncd", "syncd", "feed_retention", "-1"),
    ("fsgateway-syncd", "syncd", "bandwidth_limit", "-1"),
    ("fsgateway", "mount", "umask", "999"),
    ("fsgateway", "mount", "uid", "root"),
    ("fsgateway", "mount", "cache_size", "lots"),
])
def test_a_bad_daemon_value_is_one_line_naming_it(command, section, name, value, tmp_path):
    r = run(command, tmp_path, {section: {name: value}})
    assert_one_line_error(r, name)


def test_device_checks_its_url_and_root(tmp_path):
    base = [sys.executable, "-m", "checker.device", "--model", "m", "--hw", "A", "--state-dir", str(tmp_path / "s")]
    r = subprocess.run([*base, "--url", "cdn.example/bucket", "--root", str(tmp_path)], capture_output=True,
                       text=True, timeout=60)
    assert_one_line_error(r, "--url")
    r = subprocess.run([*base, "--url", "http://cdn.example/bucket", "--root", str(tmp_path)], capture_output=True,
                       text=True, timeout=60)
    assert_one_line_error(r, "--root")


def test_s3fs_endpoint_region_form_sets_the_region():
    """s3fs: `endpoint=` is the region (for signing), `url=` the URL; both spellings work in every command."""
    m = options.load("b", "/mnt", ["url=http://127.0.0.1:9,endpoint=eu-west-3"], {}, "/dev/null", foreground=True)
    assert (m.endpoint, m.region) == ("http://127.0.0.1:9", "eu-west-3")
    s = config.load(SyncdOptions(), "syncd", {}, "/dev/null", {"url": "http://127.0.0.1:9", "endpoint": "eu-west-3"})
    assert (s.endpoint, s.region) == ("http://127.0.0.1:9", "eu-west-3")


def test_one_vocabulary_in_the_shared_file_for_every_command(tmp_path):
    """s3fs spellings (url=, use_path_request_style, no_verify_ssl) work in [s3] for the mount, the checker
    (and fsgateway-fw, which loads the checker's configuration) and syncd alike."""
    import argparse

    from checker.context import load_config

    f = tmp_path / "c.toml"
    f.write_text('[s3]\nbucket = "b"\nurl = "http://127.0.0.1:9"\nuse_path_request_style = true\n'
                 'no_verify_ssl = true\n[syncd]\nbackup_bucket = "bb"\n')
    m = options.load("b", "/mnt", [], {}, str(f), foreground=True)
    c = load_config(argparse.Namespace(config=str(f), assignments=[], bucket=None, endpoint=None, prefix=None,
                                       state_dir=None, database=None), {})
    s = config.load(SyncdOptions(), "syncd", {}, str(f), {}).validate()
    for cfg in (m, c, s):
        assert (cfg.endpoint, cfg.path_style, cfg.verify_ssl) == ("http://127.0.0.1:9", True, False)
