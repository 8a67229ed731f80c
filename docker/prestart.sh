#!/bin/sh
# Wait for the database, run the migrations, then exec the given command.
set -e
python - <<'PY'
import time
from sqlalchemy import create_engine, text
from store.settings import get_settings

engine = create_engine(get_settings().resolved_database_url())
for attempt in range(60):
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        break
    except Exception:
        time.sleep(1)
else:
    raise SystemExit("database not reachable")
PY
alembic upgrade head
exec "$@"
