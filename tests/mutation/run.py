"""``make mutation``: mutmut 3 over the money and rule modules, each against its own fast tests.

Each module gets a scratch directory under ``.mutation/`` with a ``[tool.mutmut]`` section of
its own, so a mutant only ever runs the tests listed for its module (never the whole suite, never
a worker subprocess: a subprocess would import the unmutated code). The PostgreSQL template the
database tests clone is migrated once here and shared by every mutant run
(``HEXAVOX_TEST_TEMPLATE_DB``), instead of once per mutant.

Scores count equivalent mutants out: those listed in docs/mutation.md (one line each saying why).
Usage: ``python tests/mutation/run.py [--jobs N] [--fresh] [module-stem ...]``; exit 1 when a module
is below the target.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
WORK = ROOT / ".mutation"
EQUIVALENTS = ROOT / "docs" / "mutation.md"
TARGET = 90.0
#: What the scratch directory needs besides the packages: the test tree and the migration config.
_LINKS = ("worker", "schema", "tasks", "providers", "api", "tests", "alembic.ini")
_PACKAGES = ("worker", "schema", "tasks", "providers", "api")

#: Module -> the fast tests that exercise it directly (no worker processes, no race tests).
MODULES: dict[str, tuple[str, ...]] = {
    "worker/policy/quota.py": ("tests/integration/policy/test_policy_quota.py",
                               "tests/integration/policy/test_state_machine.py"),
    "worker/policy/duplicates.py": ("tests/integration/policy/test_policy_duplicates.py",),
    "worker/policy/idempotency.py": ("tests/integration/policy/test_policy_idempotency.py",),
    "worker/policy/consent.py": ("tests/integration/policy/test_policy_consent.py",),
    "worker/policy/transitions.py": ("tests/integration/policy/test_policy_transitions.py",
                                     "tests/integration/policy/test_state_machine.py"),
    "worker/validation/sms_text.py": ("tests/unit/test_validation_sms_text.py",),
    "worker/validation/phone.py": ("tests/unit/test_validation_phone.py",),
    "worker/validation/schedule.py": ("tests/unit/test_validation_schedule.py",),
    "api/access.py": ("tests/unit/test_api_rules.py", "tests/integration/policy/test_api_access.py"),
    "api/limits.py": ("tests/unit/test_api_rules.py", "tests/unit/test_api_limits.py"),
    "providers/outcomes.py": ("tests/unit/test_outcome_tables.py",),
}
_NEEDS_DATABASE = {"quota", "duplicates", "idempotency", "consent", "transitions", "access"}

#: mutmut's exit codes that mean the tests noticed the mutant (killed, pytest error, timeout, crash).
_DETECTED = {1, 3, 36, 37, -24, 24, 152, 255, -11, -9}


@dataclass(frozen=True)
class Score:
    module: str
    total: int
    killed: int
    equivalent: int
    survivors: tuple[str, ...]

    @property
    def percent(self) -> float:
        counted = self.total - self.equivalent
        return 100.0 if counted <= 0 else 100.0 * self.killed / counted


def equivalent_mutants(path: Path = EQUIVALENTS) -> set[str]:
    """Mutant names listed as equivalent: lines starting with '- `name`' below the "## Equivalent mutants"
    heading of docs/mutation.md (survivors named above it are not counted out)."""
    if not path.exists():
        return set()
    _, _, listed = path.read_text(encoding="utf-8").partition("\n## Equivalent mutants\n")
    return set(re.findall(r"^- `([\w.]+__mutmut_\d+)`", listed, flags=re.MULTILINE))


def _stem(module: str) -> str:
    return Path(module).stem


def _pyproject(module: str, tests: Sequence[str]) -> str:
    """The project's pyproject.toml plus a mutmut section for this module only."""
    section = {
        "source_paths": list(_PACKAGES),
        "only_mutate": [module],
        "also_copy": ["alembic.ini"],
        "pytest_add_cli_args_test_selection": list(tests),
        "pytest_add_cli_args": ["-p", "no:cacheprovider", "--timeout=60"],
        "use_git_change_detection": False,
        "timeout_multiplier": 10.0,
        "timeout_constant": 5.0,
    }
    lines = ["", "[tool.mutmut]"] + [f"{key} = {json.dumps(value)}" for key, value in section.items()]
    return (ROOT / "pyproject.toml").read_text(encoding="utf-8") + "\n".join(lines) + "\n"


def _prepare(module: str, fresh: bool) -> Path:
    """A scratch directory whose files link to the checkout (mutmut copies them into mutants/)."""
    work = WORK / _stem(module)
    if fresh and work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True, exist_ok=True)
    for name in _LINKS:
        link = work / name
        if not link.is_symlink():
            link.symlink_to(ROOT / name)
    (work / "pyproject.toml").write_text(_pyproject(module, MODULES[module]), encoding="utf-8")
    # mutmut reuses earlier results per unchanged function; after a test file changed, every mutant not yet
    # killed is tried again (a killed one stays killed: --fresh starts over when a test was weakened).
    stamp = work / ".tests-stamp"
    digest = "".join(str((ROOT / t).stat().st_mtime_ns) for t in MODULES[module] if (ROOT / t).exists())
    if not stamp.exists() or stamp.read_text() != digest:
        _retry_survivors(work / "mutants" / (module + ".meta"))
        stamp.write_text(digest)
    return work


def _retry_survivors(meta_path: Path) -> None:
    """Mark every mutant the tests did not detect as not checked yet, so the next run tries it again."""
    if not meta_path.exists():
        return
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    codes = meta["exit_code_by_key"]
    meta["exit_code_by_key"] = {name: code if code in _DETECTED else None for name, code in codes.items()}
    meta_path.write_text(json.dumps(meta, indent=4), encoding="utf-8")


def _score(module: str, work: Path, equivalents: set[str]) -> Score:
    meta = json.loads((work / "mutants" / (module + ".meta")).read_text(encoding="utf-8"))
    codes: dict[str, int | None] = meta["exit_code_by_key"]
    killed = sum(1 for code in codes.values() if code in _DETECTED)
    survivors = tuple(sorted(name for name, code in codes.items() if code not in _DETECTED))
    equivalent = sum(1 for name in survivors if name in equivalents)
    return Score(module, len(codes), killed, equivalent, tuple(n for n in survivors if n not in equivalents))


def _template_database() -> str:
    """Migrate one template database for every mutant run (each run is a whole pytest session)."""
    sys.path.insert(0, str(ROOT / "tests"))
    import psycopg
    from alembic import command
    from alembic.config import Config

    from support import PG_ADMIN_URL

    name = f"hxmut_{os.getpid()}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {name}")
    cfg = Config(str(ROOT / "alembic.ini"))
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    cfg.set_main_option("sqlalchemy.url", url.replace("postgresql://", "postgresql+psycopg://"))
    command.upgrade(cfg, "head")
    from worker.db import dispose_engines

    dispose_engines()  # a template must have no connections left, or CREATE DATABASE ... TEMPLATE fails
    return name


def _drop_database(name: str) -> None:
    import psycopg

    from support import PG_ADMIN_URL

    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def _run(module: str, jobs: int, fresh: bool, env: dict[str, str]) -> Path:
    work = _prepare(module, fresh)
    mutmut = Path(sys.executable).with_name("mutmut")
    print(f"== {module}: {' '.join(MODULES[module])}", flush=True)
    subprocess.run([str(mutmut), "run", "--max-children", str(jobs)], cwd=work, env=env, check=False,
                   stdout=subprocess.DEVNULL if not os.environ.get("MUTATION_VERBOSE") else None)
    return work


def _report(scores: Sequence[Score]) -> None:
    print("\n| module | mutants | killed | equivalent | survived | score |")
    print("|---|---:|---:|---:|---:|---:|")
    for s in scores:
        print(f"| `{s.module}` | {s.total} | {s.killed} | {s.equivalent} | {len(s.survivors)} | {s.percent:.1f} % |")
    for s in scores:
        for name in s.survivors:
            print(f"survived: {name}  (mutmut show {name}, in .mutation/{_stem(s.module)})")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("modules", nargs="*", help="module stems (quota, phone, ...); all when left out")
    parser.add_argument("--jobs", type=int, default=int(os.environ.get("MUTATION_JOBS", "1")))
    parser.add_argument("--fresh", action="store_true", help="forget earlier results")
    args = parser.parse_args(argv)
    chosen = [m for m in MODULES if not args.modules or _stem(m) in args.modules]
    if not chosen:
        parser.error(f"unknown module; choose from {', '.join(_stem(m) for m in MODULES)}")
    env = dict(os.environ)
    template = _template_database() if any(_stem(m) in _NEEDS_DATABASE for m in chosen) else None
    if template:
        env["HEXAVOX_TEST_TEMPLATE_DB"] = template
    try:
        works = {m: _run(m, args.jobs, args.fresh, env) for m in chosen}
    finally:
        if template:
            _drop_database(template)
    equivalents = equivalent_mutants()
    scores = [_score(m, works[m], equivalents) for m in chosen]
    _report(scores)
    return 0 if all(s.percent >= TARGET for s in scores) else 1


if __name__ == "__main__":
    sys.exit(main())
