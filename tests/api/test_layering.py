"""Dependency rules at run time: the API, the job kinds and the store never load torch; the
import contracts in pyproject.toml (import-linter) check the static graph."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _modules_after(statement: str) -> set[str]:
    code = f"import sys; {statement}; print(' '.join(sys.modules))"
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    return set(out.stdout.split())


def test_api_does_not_import_torch() -> None:
    mods = _modules_after("import api.main, jobs.registry, store.models, cli.main, worker.app")
    assert "torch" not in mods
    assert not any(m.startswith("worker.") and m != "worker.app" for m in mods)


def test_store_and_jobs_do_not_import_fastapi() -> None:
    assert "fastapi" not in _modules_after("import store.models, store.broker, jobs.registry")


def test_nao_core_does_not_import_api_or_worker() -> None:
    for path in (ROOT / "nao_core").rglob("*.py"):
        text = path.read_text()
        for banned in ("import api", "from api", "import worker", "from worker"):
            assert banned not in text, f"{path}: {banned}"


def test_dataset_names_match_the_registry() -> None:
    from nao_core.config import CORPUS_NAMES, DATASET_NAMES, IMAGE_DATASET_NAMES, is_corpus
    from nao_core.data import list_datasets

    assert sorted(IMAGE_DATASET_NAMES) == list_datasets()
    assert set(DATASET_NAMES) == set(IMAGE_DATASET_NAMES) | {"ptb", "wikitext2"}
    assert all(is_corpus(n) for n in CORPUS_NAMES)
    assert not any(is_corpus(n) for n in IMAGE_DATASET_NAMES)
