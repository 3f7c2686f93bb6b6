"""The shared log formatter: escaped messages, and a daemon's log file no one else can read."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.support.process import readable_by_nobody


def test_escape_makes_every_uploaded_string_one_printable_line():
    from fsgateway.daemon.logs import escape

    assert escape("plain name é.bin") == "plain name é.bin"
    assert escape("a\nINFO forged\x1b[2J\u202e\ud800") == "a\\nINFO forged\\x1b[2J\\u202e\\ud800"


def test_messages_and_arguments_are_escaped_in_every_format(tmp_path):
    code = ("import logging, sys; from fsgateway.daemon import logs; logs.setup('info', sys.argv[1]); "
            "logging.getLogger('t').warning('got %s', 'x\\nINFO forged\\x1b[2J\\ud800')")
    for fmt in ("text", "json"):
        r = subprocess.run([sys.executable, "-c", code, fmt], capture_output=True, timeout=30,
                           env={k: v for k, v in os.environ.items() if k != "JOURNAL_STREAM"})
        assert r.returncode == 0, r.stderr
        lines = r.stderr.decode().splitlines()
        assert len(lines) == 1 and "\x1b" not in lines[0] and "forged" in lines[0], lines


def test_a_daemons_log_file_is_owner_only_in_a_cache_dir_that_is_not(public_tmp):
    """Without syslog a daemonized mount logs to cache_dir/fsgateway.log; object names are in it."""
    log = public_tmp / "cache" / "fsgateway.log"
    (public_tmp / "cache").mkdir(mode=0o755)
    code = ("import logging, sys; from fsgateway.daemon import logs; "
            "logs.setup('info', 'text', daemon_log_file=sys.argv[1], syslog_socket='/nonexistent'); "
            "logging.getLogger('t').warning('secret object name')")
    r = subprocess.run([sys.executable, "-c", code, str(log)], capture_output=True, timeout=30)
    assert r.returncode == 0, r.stderr
    assert "secret object name" in log.read_text()
    assert not readable_by_nobody(log)


def test_a_daemons_log_file_removed_with_its_directory_is_made_again(tmp_path):
    """An operator empties cache_dir under a background mount: the next lines go to a new file there."""
    log = tmp_path / "cache" / "fsgateway.log"
    code = ("import logging, os, shutil, sys; from fsgateway.daemon import logs; "
            "os.umask(0o077); logs.setup('info', 'text', daemon_log_file=sys.argv[1], syslog_socket='/nonexistent'); "
            "logging.getLogger('t').warning('first'); shutil.rmtree(os.path.dirname(sys.argv[1])); "
            "logging.getLogger('t').warning('second')")
    r = subprocess.run([sys.executable, "-c", code, str(log)], capture_output=True, timeout=30)
    assert r.returncode == 0 and not r.stderr, r.stderr
    text = log.read_text()
    assert "second" in text and "first" not in text
    assert not readable_by_nobody(log) and (log.parent.stat().st_mode & 0o077) == 0


def test_an_exception_is_told_in_one_line_whatever_nursery_wraps_it():
    from fsgateway.daemon.lifecycle import one_line

    inner = FileNotFoundError(2, "No such file or directory")
    assert one_line(ExceptionGroup("Exceptions from Trio nursery (1 sub-exception)", [inner])) == \
        "[Errno 2] No such file or directory"
    assert one_line(ExceptionGroup("outer", [ExceptionGroup("inner", [ValueError("bad\nsecond line")]),
                                             KeyError("k")])) == "bad (and 1 more)"
    assert one_line(RuntimeError()) == "RuntimeError"
