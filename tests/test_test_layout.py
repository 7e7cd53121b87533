"""Test modules import helpers, never each other (nor does a helper or a benchmark).

A name one test module takes from another drags that module's tests, fixtures and autouse
fixtures along, breaks the importer when the imported module is renamed or split, and hides
where a shared helper lives. Shared code goes to a helper module that pytest does not collect
(``tests/helpers.py``, ``tests/api_server.py``, ``tests/gated_server.py``, …). The imports are
read from the source with :mod:`ast`, so nothing is imported.
"""

from __future__ import annotations

import ast
from pathlib import Path

TESTS_DIR = Path(__file__).resolve().parent
PACKAGE = TESTS_DIR.name
#: Every module of tests/ (test modules, helper modules, conftest) and the benchmarks, which
#: reuse the test helpers.
MODULES = sorted(TESTS_DIR.glob("*.py")) + sorted((TESTS_DIR.parent / "benchmarks").glob("*.py"))


def _is_test_module(name: str) -> bool:
    """Whether the dotted ``name`` is a test module of this folder (``tests.test_x``)."""
    package, _, module = name.partition(".")
    return package == PACKAGE and module.startswith("test_") and "." not in module


def imported_test_modules(source: str) -> set[str]:
    """The test modules that the Python ``source`` of a module in ``tests/`` imports,
    wherever the import stands (top level, in a function, under ``TYPE_CHECKING``)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0:
                origin = node.module or ""
            elif node.level == 1:  # ``from .test_x import y``, ``from . import test_x``
                origin = ".".join(filter(None, (PACKAGE, node.module)))
            else:  # above tests/: no test module of this folder
                continue
            found.add(origin)
            # ``from tests import test_x`` imports the module test_x itself
            found.update(f"{origin}.{alias.name}" for alias in node.names)
    return {name for name in found if _is_test_module(name)}


def test_the_check_sees_every_spelling_of_a_test_module_import() -> None:
    source = """
import tests.test_a
from tests.test_b import helper
from tests import test_c, helpers
from .test_d import helper
from . import test_e

def lazy() -> None:
    from tests.test_f import helper
from tests.helpers import wait_until
from tests.api_server import serve
import gigaam_api.test_like_name
"""
    assert imported_test_modules(source) == {
        f"{PACKAGE}.test_{letter}" for letter in ("a", "b", "c", "d", "e", "f")
    }


def test_no_test_helper_or_benchmark_imports_a_test_module() -> None:
    assert any(path.name.startswith("test_") for path in MODULES), f"no tests in {TESTS_DIR}"
    offenders = {
        str(path.relative_to(TESTS_DIR.parent)): sorted(imported)
        for path in MODULES
        if (imported := imported_test_modules(path.read_text(encoding="utf-8")))
    }
    assert offenders == {}, (
        "modules import test modules; move what they share to a helper module "
        "(not named test_*), e.g. tests/helpers.py"
    )
