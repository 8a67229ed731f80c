"""Targeted mutants of the core claims: each breaks one claim in a copy of the repository,
and at least one of the tests named for it must then fail (the mutant is "killed").

    .venv/bin/python scripts/mutants.py             # every mutant (make mutants)
    .venv/bin/python scripts/mutants.py --only resume-ws cancel-ignored --keep

The copy is the working tree (tracked and untracked files, not the ignored ones) in a
temporary folder, beside a link to ``../shared`` so the tests find the data sets; the tests run
there on this venv's Python with ``CI=true`` (a missing data set or service fails, it cannot
pass as a skip). First the named tests run unmutated and must all pass; then each mutant is
applied, its tests run, and the file restored. Prints which tests killed each mutant; exits 1
when a mutant survives or the unmutated run fails.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SERVICE = "tests/worker/test_service_claims.py"


@dataclass(frozen=True)
class Mutant:
    name: str
    claim: str
    path: str
    old: str  # must occur exactly once in the file
    new: str
    tests: tuple[str, ...]


_STATE = "if (run / STATE_FILE).is_file():"
_OUT_STATE = "if (out / STATE_FILE).is_file():"

MUTANTS = (
    Mutant(
        "resume-ws",
        "a NAO-WS search (CNN and RNN) resumes from its checkpoint",
        "nao_core/search/ws.py",
        _STATE,
        "if False:",
        (
            "tests/nao_core/test_ws_search.py::test_stopped_run_resumes_to_the_same_result",
            "tests/nao_core/test_rnn_search.py::test_stopped_search_resumes_to_the_same_result",
        ),
    ),
    Mutant(
        "resume-train",
        "a final CNN training resumes from its checkpoint",
        "nao_core/train.py",
        _OUT_STATE,
        "if False:",
        ("tests/nao_core/test_train.py::test_train_resumes_after_a_stop",),
    ),
    Mutant(
        "resume-train-rnn",
        "a final LM training resumes from its checkpoint",
        "nao_core/train_rnn.py",
        _OUT_STATE,
        "if False:",
        ("tests/nao_core/test_rnn_train.py::test_stopped_training_resumes_to_the_same_model",),
    ),
    Mutant(
        "resume-nows",
        "a search without weight sharing resumes at its next round",
        "nao_core/search/nows.py",
        _STATE,
        "if False:",
        ("tests/nao_core/test_nows_search.py::test_a_stopped_search_resumes_at_its_next_round",),
    ),
    Mutant(
        "resume-service",
        "a search whose worker is killed resumes from its checkpoint in the next attempt",
        "nao_core/search/ws.py",
        _STATE,
        "if False:",
        (f"{SERVICE}::test_kill_9_mid_search_is_recovered_and_resumes_without_redoing_work",),
    ),
    Mutant(
        "nt-asgd-trigger-off",
        "NT-ASGD switches to averaging when validation stops improving",
        "nao_core/train_rnn.py",
        'if nt and nt_asgd_trigger(self.losses, val["loss"], ocfg.nonmono):',
        "if False:",
        (
            "tests/nao_core/test_rnn_train.py::"
            "test_nt_asgd_switches_by_itself_when_validation_stops_improving",
        ),
    ),
    Mutant(
        "dedup-off-queries",
        "an architecture queried again costs no query (canonical form)",
        "nao_core/search/budget.py",
        "        if key in self._cache:\n            return self._cache[key]\n",
        "",
        ("tests/nao_core/test_strategies.py",),
    ),
    Mutant(
        "dedup-off-pool",
        "a search pool never holds one architecture twice (canonical form)",
        "nao_core/search/pool.py",
        "        if key in self.seen:\n            return None\n",
        "",
        (
            "tests/nao_core/test_ws_search.py::test_pool_dedupes_by_canonical_form_and_replaces_worst",
        ),
    ),
    Mutant(
        "budget-off-by-one-queries",
        "a strategy spends exactly its query budget",
        "nao_core/search/budget.py",
        "if self.used >= self.budget:",
        "if self.used > self.budget:",
        ("tests/nao_core/test_strategies.py",),
    ),
    Mutant(
        "budget-off-by-one-candidates",
        "max_candidates caps a search without weight sharing",
        "nao_core/search/nows.py",
        "return max(self.cfg.max_candidates - len(self.pool), 0)",
        "return max(self.cfg.max_candidates - len(self.pool) + 1, 0)",
        ("tests/nao_core/test_nows_search.py::test_candidate_budget_caps_the_search",),
    ),
    Mutant(
        "cancel-ignored",
        "a cancelled running job stops at the next epoch boundary",
        "worker/progress.py",
        "self._stop = status in (JobStatus.CANCELLING, JobStatus.CANCELLED)",
        "self._stop = False",
        (
            "tests/worker/test_progress.py::test_should_stop_sees_cancelling",
            f"{SERVICE}::test_cancel_stops_a_running_search_at_the_next_epoch_boundary",
        ),
    ),
)


def say(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def copy_tree(dest: Path) -> None:
    """The working tree as it is (others' uncommitted edits included), without ignored files."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        check=True,
        capture_output=True,
    ).stdout.split(b"\0")
    for name in filter(None, (n.decode() for n in listed)):
        src = ROOT / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)


def run_tests(repo: Path, tests: list[str], report: Path, env: dict[str, str]) -> dict[str, str]:
    """Each test case's outcome (passed, failed, error, skipped) from pytest's JUnit report."""
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:randomly", "-p", "no:cacheprovider",
           f"--junitxml={report}", *tests]  # fmt: skip
    subprocess.run(cmd, cwd=repo, env=env, capture_output=True, timeout=1800)
    outcomes: dict[str, str] = {}
    if not report.is_file():
        return outcomes
    for case in ET.parse(report).getroot().iter("testcase"):
        name = f"{case.get('classname')}::{case.get('name')}"
        kinds = {child.tag for child in case}
        outcomes[name] = next(
            (k for k in ("failure", "error", "skipped") if k in kinds), "passed"
        ).replace("failure", "failed")
    return outcomes


def apply(repo: Path, m: Mutant) -> str:
    path = repo / m.path
    original = path.read_text()
    if original.count(m.old) != 1:
        raise SystemExit(f"{m.name}: the mutated text occurs {original.count(m.old)} times in "
                         f"{m.path}; update scripts/mutants.py")  # fmt: skip
    path.write_text(original.replace(m.old, m.new))
    return original


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", nargs="*", help="mutant names (default: all)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary copy")
    args = ap.parse_args(argv)
    chosen = [m for m in MUTANTS if not args.only or m.name in args.only]
    if not chosen:
        raise SystemExit(f"no such mutant; known: {', '.join(m.name for m in MUTANTS)}")
    base = Path(tempfile.mkdtemp(prefix="nao-mutants-"))
    repo = base / "repo"
    try:
        copy_tree(repo)
        if (ROOT.parent / "shared").is_dir():
            (base / "shared").symlink_to(ROOT.parent / "shared")
        env = {**os.environ, "PYTHONPATH": str(repo), "CI": "true", "OMP_NUM_THREADS": "1"}
        probe = [sys.executable, "-c", "import nao_core; print(nao_core.__file__)"]
        where = subprocess.run(probe, cwd=repo, env=env, capture_output=True, text=True, check=True)
        if not where.stdout.strip().startswith(str(repo)):
            raise SystemExit(f"the copy's tests would import {where.stdout.strip()}")
        tests = sorted({t for m in chosen for t in m.tests})
        began = time.monotonic()
        baseline = run_tests(repo, tests, base / "baseline.xml", env)
        bad = {t: o for t, o in baseline.items() if o != "passed"}
        say(f"unmutated: {len(baseline)} tests, {len(bad)} not passing "
            f"({time.monotonic() - began:.0f} s)")  # fmt: skip
        if bad or not baseline:
            for t, o in bad.items():
                say(f"  {o}: {t}")
            return 1
        survived = []
        for m in chosen:
            began = time.monotonic()
            original = apply(repo, m)
            try:
                outcomes = run_tests(repo, list(m.tests), base / f"{m.name}.xml", env)
            finally:
                (repo / m.path).write_text(original)
            killers = sorted(t for t, o in outcomes.items() if o in ("failed", "error"))
            verdict = "killed" if killers else "SURVIVED"
            say(f"{m.name:30} {verdict:8} {time.monotonic() - began:5.0f} s  {m.claim}")
            for t in killers:
                say(f"    by {t}")
            if not killers:
                survived.append(m.name)
        say(f"{len(chosen) - len(survived)}/{len(chosen)} mutants killed")
        return 1 if survived else 0
    finally:
        if args.keep:
            say(f"copy kept in {base}")
        else:
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
