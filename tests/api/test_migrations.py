"""The real Alembic migrations, up and down, on Postgres and on SQLite."""

from __future__ import annotations

from pathlib import Path

import pytest
from service_fixtures import postgres_database
from sqlalchemy import create_engine, inspect

from store.migrate import downgrade, upgrade

TABLES = {"job", "architecture", "metric", "checkpoint", "api_token", "search_candidate"}


def _tables(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        return set(inspect(engine).get_table_names()) - {"alembic_version"}
    finally:
        engine.dispose()


def _check_up_down(url: str) -> None:
    upgrade(url)
    assert _tables(url) == TABLES
    engine = create_engine(url)
    indexes = {i["name"] for i in inspect(engine).get_indexes("architecture")}
    engine.dispose()
    assert {"ix_architecture_supernet", "ix_architecture_job_trained"} <= indexes
    downgrade(url)
    assert _tables(url) == set()
    upgrade(url)  # and up again: downgrade left nothing behind
    assert _tables(url) == TABLES


@pytest.mark.db
def test_migrations_up_and_down_on_postgres() -> None:
    with postgres_database() as url:
        _check_up_down(url)


def test_migrations_up_and_down_on_sqlite(tmp_path: Path) -> None:
    _check_up_down(f"sqlite:///{tmp_path / 'nao.sqlite'}")


def test_models_match_the_migrations(tmp_path: Path) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from store.db import Base

    url = f"sqlite:///{tmp_path / 'nao.sqlite'}"
    upgrade(url)
    engine = create_engine(url)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    engine.dispose()
    assert diff == []
