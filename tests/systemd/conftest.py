"""The systemd tests start every daemon: fixtures of the checker and syncd tests, reused."""

from tests.checker.conftest import pipeline, pipelines  # noqa: F401
from tests.syncd.conftest import same_backup, syncd_factory  # noqa: F401
