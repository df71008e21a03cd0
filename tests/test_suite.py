"""The test suite's own shape: test modules stand alone, sharing helpers only through
`conftest.py` or a helper module (`endpoint_stub.py`, `sample_result.py`)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent


@pytest.mark.parametrize("path", sorted(TESTS.glob("test_*.py")), ids=lambda p: p.name)
def test_a_test_module_imports_no_other_test_module(path: Path) -> None:
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = [node.module or ""] + [f"{node.module}.{a.name}" for a in node.names]
        else:
            continue
        for name in names:
            parts = name.split(".")
            assert not any(part.startswith("test_") or part == "conftest" for part in parts), (
                f"{path.name} imports {name}: move what it shares to conftest.py or a helper module"
            )
