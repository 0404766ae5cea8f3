"""The unit of work is the only way to open a database session (ARCHITECTURE.md §3).

Fails the build when code outside shared/db creates an engine, a session, a sessionmaker or
a raw connection, or reaches for the app engine directly. devhost keeps its own tables in
its own schema and is exempt, as are tests and benchmarks (they inspect the database).
"""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
EXEMPT_DIRS = {"shared/db", "devhost", "tests", "bench", ".venv", ".asep", "build"}
FORBIDDEN_CALLS = {
    "Session",
    "sessionmaker",
    "create_engine",
    "app_engine",
    "build_engine",
    "scoped_session",
    "connect",
}
FORBIDDEN_IMPORTS = {
    ("sqlalchemy.orm", "Session"),
    ("sqlalchemy.orm", "sessionmaker"),
    ("sqlalchemy.orm", "scoped_session"),
    ("sqlalchemy", "create_engine"),
    ("shared.db.engine", "app_engine"),
    ("shared.db.engine", "build_engine"),
}


def _checked_files() -> list[Path]:
    files = []
    for path in REPO.rglob("*.py"):
        relative = path.relative_to(REPO).as_posix()
        if any(relative == d or relative.startswith(d + "/") for d in EXEMPT_DIRS):
            continue
        files.append(path)
    return files


def _type_checking_only(tree: ast.AST) -> set[int]:
    """Ids of nodes under `if TYPE_CHECKING:`: annotations, never executed."""
    guarded: set[int] = set()
    for node in ast.walk(tree):
        test = node.test if isinstance(node, ast.If) else None
        if isinstance(node, ast.If) and isinstance(test, ast.Name) and test.id == "TYPE_CHECKING":
            guarded.update(id(child) for stmt in node.body for child in ast.walk(stmt))
    return guarded


def _violations(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    guarded = _type_checking_only(tree)
    found = []
    for node in ast.walk(tree):
        if id(node) in guarded:
            continue
        if isinstance(node, ast.ImportFrom) and node.module:
            for alias in node.names:
                if (node.module, alias.name) in FORBIDDEN_IMPORTS:
                    found.append(f"{path}:{node.lineno} imports {node.module}.{alias.name}")
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name in {"psycopg", "psycopg2", "asyncpg"}:
                    found.append(f"{path}:{node.lineno} imports {alias.name}")
        elif isinstance(node, ast.Call):
            name = (
                node.func.attr
                if isinstance(node.func, ast.Attribute)
                else node.func.id
                if isinstance(node.func, ast.Name)
                else None
            )
            receiver = node.func.value if isinstance(node.func, ast.Attribute) else None
            if name == "connect" and not (
                isinstance(receiver, ast.Name) and receiver.id in {"psycopg", "engine"}
            ):
                continue
            if name in FORBIDDEN_CALLS:
                found.append(f"{path}:{node.lineno} calls {name}()")
    return found


def test_no_code_opens_a_session_outside_the_unit_of_work() -> None:
    files = _checked_files()
    assert any(path.name == "function_app.py" for path in files)
    violations = [violation for path in files for violation in _violations(path)]
    assert violations == []


def test_the_check_catches_a_session_opened_by_hand(tmp_path: Path) -> None:
    sneaky = tmp_path / "sneaky.py"
    sneaky.write_text(
        "from sqlalchemy.orm import Session\n"
        "import psycopg\n"
        "from shared.db.engine import app_engine\n"
        "def f():\n"
        "    with Session(app_engine()) as s:\n"
        "        psycopg.connect('dbname=x')\n"
    )
    assert len(_violations(sneaky)) == 6


def test_annotations_under_type_checking_are_not_sessions(tmp_path: Path) -> None:
    typed = tmp_path / "typed.py"
    typed.write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n"
        "    from sqlalchemy.orm import Session\n"
        "def hook(session: 'Session') -> None: ...\n"
    )
    assert _violations(typed) == []
