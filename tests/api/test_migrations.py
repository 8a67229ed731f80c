"""The real Alembic migrations, up and down, on Postgres and on SQLite."""

from __future__ import annotations

from pathlib import Path

import pytest
from service_fixtures import postgres_database
from sqlalchemy import create_engine, inspect, text

from store.migrate import downgrade, upgrade

TABLES = {
    "job",
    "architecture",
    "metric",
    "checkpoint",
    "api_token",
    "search_candidate",
    "pool_round",
}


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
    _check_pool_round_down_and_up(url)
    downgrade(url)
    assert _tables(url) == set()
    upgrade(url)  # and up again: downgrade left nothing behind
    assert _tables(url) == TABLES


def _check_pool_round_down_and_up(url: str) -> None:
    """0004 down and up again on a database holding rows: the architecture rows and the
    jobs pointing at them survive the column's removal."""
    engine = create_engine(url)
    with engine.begin() as conn:
        job = conn.execute(
            text(
                "INSERT INTO job (kind, status, config, request, progress, current, total,"
                " rounds, attempts, created_at, updated_at) VALUES ('search', 'running', '{}',"
                " '{}', 0, 0, 0, 0, 0, :t, :t) RETURNING id"
            ),
            {"t": "2026-12-04 00:00:00+00:00"},
        ).scalar_one()
        arch = conn.execute(
            text(
                "INSERT INTO architecture (job_id, space, dataset, arch, canonical_hash, round,"
                " step_size, created_at) VALUES (:j, 'cnn', 'digits', 'a', 'h', 1, 3.0, :t)"
                " RETURNING id"
            ),
            {"j": job, "t": "2026-12-04 00:00:00+00:00"},
        ).scalar_one()
        conn.execute(
            text("UPDATE job SET architecture_id = :a WHERE id = :j"), {"a": arch, "j": job}
        )
        conn.execute(
            text(
                "INSERT INTO pool_round (job_id, round, pool_id, predicted, measured)"
                " VALUES (:j, 2, 0, 0.5, 0.25)"
            ),
            {"j": job},
        )
    engine.dispose()
    downgrade(url, "0003_nows")
    assert "pool_round" not in _tables(url)
    engine = create_engine(url)
    columns = {c["name"] for c in inspect(engine).get_columns("architecture")}
    with engine.connect() as conn:
        kept = conn.execute(text("SELECT architecture_id FROM job WHERE id = :j"), {"j": job})
        assert kept.scalar_one() == arch
    engine.dispose()
    assert "step_size" not in columns
    upgrade(url)
    assert _tables(url) == TABLES
    engine = create_engine(url)
    unique = inspect(engine).get_unique_constraints("pool_round")
    assert [(u["name"], u["column_names"]) for u in unique] == [
        ("uq_pool_round_job_id", ["job_id", "round", "pool_id"])
    ]
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM job"))
    engine.dispose()


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
