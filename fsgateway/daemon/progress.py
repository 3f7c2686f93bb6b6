"""Progress bars for long one-shot work on a terminal (`fsgateway-syncd once`, `fsgateway-device`).

Shown the way rclone `-P` and `aws s3 sync` show it: only when the output is a
terminal, never under systemd and never into logs, unless asked for. tqdm
draws the bar (rate, ETA, terminal width, redraw throttling); this module only
decides whether there is one.
"""

from __future__ import annotations

import os
import sys
from typing import TextIO

from tqdm import tqdm


def wanted(choice: bool | None, stream: TextIO) -> bool:
    """`choice` from --progress/--no-progress wins; else a terminal that is not systemd's or `TERM=dumb`."""
    if choice is not None:
        return choice
    under_systemd = bool(os.environ.get("INVOCATION_ID") or os.environ.get("JOURNAL_STREAM"))
    return stream.isatty() and not under_systemd and os.environ.get("TERM") != "dumb"


def bar(desc: str, total: int | None, unit: str, enabled: bool, stream: TextIO | None = None) -> tqdm:
    """A bar counting `unit`s ("B" is shown in KiB/MiB/…), or a disabled one that costs nothing."""
    return tqdm(total=total, desc=desc, unit=unit, unit_scale=True, unit_divisor=1024 if unit == "B" else 1000,
                disable=not enabled, file=stream or sys.stderr, leave=True, dynamic_ncols=True, mininterval=0.25)
