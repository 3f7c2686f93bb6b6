"""When a progress bar is drawn: terminals yes, pipes and systemd no, the user's flag wins."""

from __future__ import annotations

import io

import pytest

from fsgateway.daemon import progress


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture
def clean_env(monkeypatch):
    for name in ("INVOCATION_ID", "JOURNAL_STREAM"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TERM", "xterm")
    return monkeypatch


def test_a_terminal_gets_progress_a_pipe_does_not(clean_env):
    assert progress.wanted(None, Terminal())
    assert not progress.wanted(None, io.StringIO())


@pytest.mark.parametrize("name, value", [("INVOCATION_ID", "abc"), ("JOURNAL_STREAM", "8:123"), ("TERM", "dumb")])
def test_systemd_and_dumb_terminals_get_none(clean_env, name, value):
    clean_env.setenv(name, value)
    assert not progress.wanted(None, Terminal())


def test_the_flag_wins_both_ways(clean_env):
    assert progress.wanted(True, io.StringIO())
    assert not progress.wanted(False, Terminal())


def test_a_disabled_bar_writes_nothing():
    out = io.StringIO()
    with progress.bar("x", 10, "B", False, out) as b:
        b.update(10)
    assert out.getvalue() == ""
    with progress.bar("x", 2048, "B", True, out) as b:
        b.update(2048)
    assert "2.00k/2.00k" in out.getvalue()
