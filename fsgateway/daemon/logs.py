"""Structured logs: `level logger: message` for people and journald, or one JSON object a line.

Under systemd (JOURNAL_STREAM set) no timestamp is printed: journald adds
its own. When daemonized without a terminal, logs go to syslog.
"""

from __future__ import annotations

import io
import json
import logging
import logging.handlers
import os
import sys
import time

from fsgateway.daemon.private import private_dir, private_file

SYSLOG_PRIORITY = {"DEBUG": 7, "INFO": 6, "WARNING": 4, "ERROR": 3, "CRITICAL": 2}


def escape(text: str) -> str:
    """`text` with every character that is not printable written as its Python escape (`\\n`, `\\x1b`, `\\ud800`).

    Object keys and manifest fields are chosen by whoever uploads: a newline
    would forge a log line, an ANSI sequence would drive the operator's
    terminal, a lone surrogate cannot even be encoded. Every such string goes
    through here before it reaches a log, a report or a terminal.
    """
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else ascii(c)[1:-1] for c in text)


class EscapeFilter(logging.Filter):
    """Escapes each record's message (arguments included) and its traceback's lines, whatever the formatter."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        record.msg, record.args = escape(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = "\n".join(escape(line) for line in
                                         logging.Formatter().formatException(record.exc_info).split("\n"))
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        doc = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if record.exc_info:
            doc["exc"] = record.exc_text or self.formatException(record.exc_info)
        return json.dumps(doc, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    def __init__(self, timestamps: bool) -> None:
        prefix = "%(asctime)s " if timestamps else ""
        super().__init__(prefix + "%(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        if os.environ.get("JOURNAL_STREAM"):  # journald reads the <N> priority prefix
            text = f"<{SYSLOG_PRIORITY.get(record.levelname, 6)}>{text}"
        return text


class LogFile(logging.handlers.WatchedFileHandler):
    """A log file opened again when it was moved or removed (logrotate, an operator emptying cache_dir),
    its directory made again if need be (the daemons' umask keeps both private)."""

    def _open(self) -> io.TextIOWrapper:
        private_dir(os.path.dirname(self.baseFilename))
        return super()._open()


def setup(level: str, fmt: str, daemon_log_file: str | None = None, syslog_socket: str = "/dev/log") -> None:
    """Log to stderr; a daemon (no terminal) logs to syslog, or to `daemon_log_file` (0600) without one."""
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    handler: logging.Handler
    if daemon_log_file and os.path.exists(syslog_socket):
        handler = logging.handlers.SysLogHandler(address=syslog_socket)
        handler.setFormatter(logging.Formatter("fsgateway[%(process)d]: %(levelname)s %(name)s: %(message)s"))
    elif daemon_log_file:
        private_dir(os.path.dirname(daemon_log_file))
        private_file(daemon_log_file)  # object names are no one else's business, whatever cache_dir's mode
        handler = LogFile(daemon_log_file)
        handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter(timestamps=True))
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(JsonFormatter() if fmt == "json" else
                             TextFormatter(timestamps=not os.environ.get("JOURNAL_STREAM")))
    handler.addFilter(EscapeFilter())
    root.addHandler(handler)
    root.setLevel(level.upper())
    for noisy in ("botocore", "boto3", "urllib3", "s3transfer"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
    logging.getLogger("pyfuse3").setLevel(max(logging.INFO, root.level))
