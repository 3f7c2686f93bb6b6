"""The deploy tests run the whole pipeline: fixtures of the checker and syncd tests, reused."""

from tests.checker.conftest import mounted, pipeline, pipelines  # noqa: F401
from tests.syncd.conftest import same_backup, syncd_factory  # noqa: F401
