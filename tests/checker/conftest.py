"""Fixtures of the checker tests: pipelines (tests/support/checker.py), a mount of one, version databases."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator

import pytest

from tests.support.checker import Pipeline
from tests.support.mount import Mount
from tests.support.s3 import remove_bucket


@pytest.fixture
def pipelines(server, s3, passwd_file, tmp_path) -> Iterator[Callable[..., Pipeline]]:
    """Factory: a fresh bucket with an initialised repository; every checker is stopped at the end."""
    made: list[Pipeline] = []

    def make(database: str = "", bucket: str | None = None) -> Pipeline:
        name = bucket or f"t-{uuid.uuid4().hex[:12]}"
        if bucket is None:
            s3.create_bucket(Bucket=name)
        p = Pipeline(server, s3, name, tmp_path / f"p{len(made)}", passwd_file, database)
        p.tmp.mkdir()
        made.append(p)
        return p

    yield make
    for p in made:
        for proc in p.processes:
            proc.stop()
    for name in {p.bucket for p in made}:
        remove_bucket(s3, name)


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh PostgreSQL database on the server scripts/postgres-up.sh runs (CHECKER_PG_URL)."""
    base = os.environ.get("CHECKER_PG_URL")
    if not base:
        pytest.skip("CHECKER_PG_URL is not set (scripts/run-tests starts PostgreSQL and sets it)")
    import psycopg

    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    yield base.rsplit("/", 1)[0] + "/" + name
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE {name} WITH (FORCE)")


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request, tmp_path) -> str:
    """Each version-database test runs on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite://{tmp_path / 'versions.db'}"
    return request.getfixturevalue("pg_url")


@pytest.fixture
def pipeline(pipelines) -> Pipeline:
    p = pipelines()
    p.init()
    return p


@pytest.fixture
def mounted(mounter, pipeline) -> Mount:
    """A real fsgateway mount of the pipeline's bucket."""
    m = mounter()
    m.start(pipeline.bucket)
    return m


