"""Cached top-k reads: ``GET /architectures`` answers kept as JSON bytes in each API process.

The top-k query itself is a sub-millisecond index scan; what costs is the Python request path
(session, ORM rows, validation, serialisation). So the endpoint stores the bytes it produced
under the raw query string, and ``CachedReads`` (plain ASGI, before routing) answers a repeated
query from them. Entries are dropped the moment any writer commits architecture rows: migration
``0002_read_path`` makes Postgres ``NOTIFY nao_architecture`` at every such commit and a
``ChangeListener`` thread per process ``LISTEN``s. Without that feed (SQLite, the listener
disconnected, the trigger missing) the cache is off and every read goes to the database.

An entry is stored only if no change arrived while it was being computed (``generation``), so
a read that raced a write never outlives it.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

logger = logging.getLogger(__name__)

CHANNEL = "nao_architecture"  # see migrations/versions/2026-11-28-1000_read_path.py
PATH = "/architectures"


class ReadCache:
    """Response bytes by query string, valid for one ``generation`` of the architecture table."""

    def __init__(self, max_entries: int = 512) -> None:
        self.max_entries = max_entries
        self.enabled = False
        self.generation = 0
        self._entries: dict[bytes, bytes] = {}
        self._lock = threading.Lock()

    def get(self, key: bytes) -> bytes | None:
        return self._entries.get(key) if self.enabled else None

    def put(self, key: bytes, body: bytes, generation: int) -> None:
        """Keep ``body`` unless the table changed since ``generation`` was read."""
        with self._lock:
            if not self.enabled or generation != self.generation:
                return
            if len(self._entries) >= self.max_entries:  # keys are user input: stay bounded
                self._entries.pop(next(iter(self._entries)))
            self._entries[key] = body

    def invalidate(self) -> None:
        with self._lock:
            self.generation += 1
            self._entries.clear()

    def set_enabled(self, enabled: bool) -> None:
        with self._lock:
            self.enabled = enabled
            self.generation += 1
            self._entries.clear()


class CachedReads:
    """ASGI middleware: a ``GET /architectures`` whose answer is cached never reaches routing."""

    def __init__(self, app: Any, cache: ReadCache) -> None:
        self.app, self.cache = app, cache

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"] == PATH and scope["method"] == "GET":
            body = self.cache.get(scope["query_string"])
            if body is not None:
                headers = [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ]
                await send({"type": "http.response.start", "status": 200, "headers": headers})
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)


class ChangeListener:
    """A daemon thread that ``LISTEN``s on Postgres and drops the cache at every change.

    The cache is on only while the listener is connected (and the trigger exists); after a
    reconnect it starts empty, since changes may have been missed in between.
    """

    def __init__(self, database_url: str, cache: ReadCache, poll_s: float = 0.5) -> None:
        self.dsn = database_url.replace("postgresql+psycopg://", "postgresql://")
        self.cache, self.poll_s = cache, poll_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="nao-read-cache", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.cache.set_enabled(False)

    def _run(self) -> None:
        import psycopg

        while not self._stop.is_set():
            try:
                with psycopg.connect(self.dsn, autocommit=True, connect_timeout=5) as conn:
                    if not self._has_trigger(conn):
                        logger.warning("read cache off: migration 0002_read_path not applied")
                        return
                    conn.execute(f"LISTEN {CHANNEL}")
                    self.cache.set_enabled(True)
                    while not self._stop.is_set():
                        for _ in conn.notifies(timeout=self.poll_s):
                            self.cache.invalidate()
            except psycopg.Error as exc:
                logger.warning("read cache off, reconnecting: %s", exc)
            finally:
                self.cache.set_enabled(False)
            self._stop.wait(1.0)

    @staticmethod
    def _has_trigger(conn: Any) -> bool:
        row = conn.execute(
            "SELECT 1 FROM pg_trigger WHERE tgname = 'architecture_changed'"
            " AND tgrelid = 'architecture'::regclass"
        ).fetchone()
        return row is not None
