"""The architecture the folders promise, checked on the imports themselves."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "vvv_core"


def imports(path: Path) -> set[str]:
    """Every module ``path`` imports, at any depth of its code."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return found


def modules(under: Path = PACKAGE) -> dict[str, set[str]]:
    return {str(p.relative_to(PACKAGE)): imports(p) for p in sorted(under.rglob("*.py"))}


def test_the_core_never_imports_its_plugins():
    """Only the command line (the composition root) knows the groups; the core is handed their registry."""
    importers = {m for m, names in modules().items() if any(n.startswith("vvv_core.groups") for n in names)}
    assert {m for m in importers if not m.startswith("groups/")} == {"cli.py"}


def test_only_the_kafka_backend_of_the_runtime_talks_to_the_client_library():
    users = {
        m for m, names in modules(PACKAGE / "runtime").items() if any(n.startswith("confluent_kafka") for n in names)
    }
    assert users == {"runtime/backends/kafka.py", "runtime/backends/brokerwatch.py"}


def test_the_domain_is_free_of_kafka_sqlite_and_http():
    for module, names in modules(PACKAGE / "domain").items():
        forbidden = {n for n in names if n.split(".")[0] in {"confluent_kafka", "sqlite3", "http", "socket", "urllib3"}}
        assert not forbidden, f"{module} imports {forbidden}"
        assert not {n for n in names if n.startswith(("vvv_core.runtime", "vvv_core.kafka", "vvv_core.db"))}
