"""The real Alembic migrations, up and down, on Postgres and on SQLite."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from service_fixtures import postgres_database
from sqlalchemy import create_engine, inspect, text

from store.db import make_engine
from store.migrate import downgrade, upgrade

TABLES = {
    "job",
    "architecture",
    "metric",
    "checkpoint",
    "api_token",
    "search_candidate",
    "pool_round",
    "worker_status",
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
    _check_token_owners_down_and_up(url)
    _check_worker_status_down_and_up(url)
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


_JOB = (
    "INSERT INTO job (kind, status, config, request, progress, current, total, rounds,"
    " attempts, created_at, updated_at{cols}) VALUES ('train', 'queued', '{{}}', '{{}}', 0, 0,"
    " 0, 0, 0, :t, :t{vals}) RETURNING id"
)
_T = "2026-12-06 00:00:00+00:00"


def _check_token_owners_down_and_up(url: str) -> None:
    """0005 down and up with rows: jobs and their metrics survive; tokens made before it
    become admins; deleting a token leaves its jobs without an owner (SET NULL)."""
    engine = create_engine(url)
    with engine.begin() as conn:
        token = conn.execute(
            text(
                "INSERT INTO api_token (name, role, token_hash, created_at) VALUES"
                " ('alice', 'user', 'h1', :t) RETURNING id"
            ),
            {"t": _T},
        ).scalar_one()
        job = conn.execute(
            text(_JOB.format(cols=", created_by", vals=", :o")), {"t": _T, "o": token}
        ).scalar_one()
        conn.execute(
            text(
                "INSERT INTO metric (job_id, name, step, value, created_at)"
                " VALUES (:j, 'm', 1, 2, :t)"
            ),
            {"j": job, "t": _T},
        )
    engine.dispose()
    downgrade(url, "0004_pool_round")
    engine = create_engine(url)
    assert "created_by" not in {c["name"] for c in inspect(engine).get_columns("job")}
    assert {"role", "revoked_at"}.isdisjoint(
        c["name"] for c in inspect(engine).get_columns("api_token")
    )
    with engine.connect() as conn:
        assert (
            conn.execute(
                text("SELECT count(*) FROM metric WHERE job_id = :j"), {"j": job}
            ).scalar_one()
            == 1
        )
    engine.dispose()
    upgrade(url)
    engine = make_engine(url)  # with SQLite's foreign keys on, as the service runs it
    with engine.begin() as conn:
        role = conn.execute(text("SELECT role FROM api_token WHERE id = :i"), {"i": token})
        assert role.scalar_one() == "admin"  # it could cancel any job before
        new = conn.execute(
            text(_JOB.format(cols=", created_by", vals=", :o")), {"t": _T, "o": token}
        ).scalar_one()
        conn.execute(text("DELETE FROM api_token WHERE id = :i"), {"i": token})
        owners = conn.execute(
            text("SELECT id, created_by FROM job WHERE id IN (:a, :b)"), {"a": job, "b": new}
        )
        assert sorted(owners.all()) == sorted([(job, None), (new, None)])
        assert conn.execute(text("SELECT count(*) FROM metric")).scalar_one() == 1
        conn.execute(text("DELETE FROM job"))
    engine.dispose()


def _check_worker_status_down_and_up(url: str) -> None:
    """0008 down and up: the table goes and comes back, nullable GPU columns and all."""
    downgrade(url, "0007_space_score_indexes")
    assert _tables(url) == TABLES - {"worker_status"}
    upgrade(url)
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO worker_status (worker, host, device, seen_at)"
                " VALUES ('w/h:1', 'h', 'cpu', :t)"
            ),
            {"t": _T},
        )
        nulls = conn.execute(
            text(
                "SELECT gpu_memory_used_bytes, gpu_memory_total_bytes, gpu_utilization_percent"
                " FROM worker_status"
            )
        )
        assert nulls.one() == (None, None, None)
        conn.execute(text("DELETE FROM worker_status"))
    engine.dispose()


@pytest.mark.db
def test_migrations_up_and_down_on_postgres() -> None:
    with postgres_database() as url:
        _check_up_down(url)


def test_migrations_up_and_down_on_sqlite(tmp_path: Path) -> None:
    _check_up_down(f"sqlite:///{tmp_path / 'nao.sqlite'}")


def _diff(url: str) -> list[Any]:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from store.db import Base

    upgrade(url)
    engine = create_engine(url)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    engine.dispose()
    return diff


def _fk_columns(entry: Any) -> tuple[str, str, list[str]]:
    fk = entry[1]
    return entry[0], fk.table.name, [c.name for c in fk.columns]


def test_models_match_the_migrations(tmp_path: Path) -> None:
    diff = _diff(f"sqlite:///{tmp_path / 'nao.sqlite'}")
    # job.created_by's key was added with its column (ALTER TABLE ... ADD COLUMN ... CONSTRAINT
    # ... REFERENCES): SQLAlchemy reads neither its name nor ON DELETE back from SQLite. What
    # the key does is checked above (SET NULL); on Postgres the whole key is compared below.
    inline = [("add_fk", "job", ["created_by"]), ("remove_fk", "job", ["created_by"])]
    assert sorted(_fk_columns(d) for d in diff if d[0] in ("remove_fk", "add_fk")) == inline
    assert [d for d in diff if d[0] not in ("remove_fk", "add_fk")] == []


@pytest.mark.db
def test_models_match_the_migrations_on_postgres() -> None:
    with postgres_database() as url:
        diff = _diff(url)
    # Known, older than job.created_by: 0001 never created job's two use_alter keys on
    # Postgres (architecture_id, checkpoint_id); a migration of their own should add them.
    known = {("add_fk", "job", ("architecture_id",)), ("add_fk", "job", ("checkpoint_id",))}
    rest = [d for d in diff if d[0] != "add_fk" or _fk_key(d) not in known]
    assert rest == []


def _fk_key(entry: Any) -> tuple[str, str, tuple[str, ...]]:
    name, table, columns = _fk_columns(entry)
    return name, table, tuple(columns)
