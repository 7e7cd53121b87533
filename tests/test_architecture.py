"""The layering that ``docs/architecture.md`` states, checked against the real imports.

The import graph of ``gigaam_api`` is read from the source with :mod:`ast` (nothing is
imported), counting every ``import`` wherever it stands: at the top, inside a function (the
lazy imports of heavy modules) or under ``TYPE_CHECKING``. A rule that fails here means either
the code grew an edge the design forbids, or the design changed and the document must say so
in the same change.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
PACKAGE = REPO_ROOT / "gigaam_api"
ROOT = "gigaam_api"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO_ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports_of(path: Path, name: str, modules: set[str]) -> set[str]:
    """The ``gigaam_api`` modules that ``path`` imports, resolved to module names."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            for alias in node.names:
                # ``from gigaam_api import audio`` depends on the submodule, not the package face.
                submodule = f"{source}.{alias.name}"
                found.add(submodule if submodule in modules else source)
    return {module for module in found if module in modules and module != name}


def _import_graph() -> dict[str, set[str]]:
    paths = {_module_name(path): path for path in PACKAGE.rglob("*.py")}
    modules = set(paths)
    return {name: _imports_of(path, name, modules) for name, path in paths.items()}


GRAPH = _import_graph()


def _short(module: str) -> str:
    """``gigaam_api.audio.ffmpeg`` → ``audio.ffmpeg`` (the names the document uses)."""
    return module.removeprefix(ROOT + ".") if module != ROOT else ROOT


def _layer(module: str) -> str:
    """The top-level module or package a module belongs to: ``model.graph`` → ``model``."""
    return _short(module).split(".")[0]


def _reachable(start: str) -> set[str]:
    seen: set[str] = set()
    todo = [start]
    while todo:
        for target in GRAPH[todo.pop()]:
            if target not in seen:
                seen.add(target)
                todo.append(target)
    return seen


#: Everything below the service core: the engine, the pipeline and their leaves.
BELOW_THE_CORE = {
    "constants",
    "cancellation",
    "onnx_session",
    "options",
    "catalogue",
    "logging",
    "batching",
    "keyword_list",
    "transcript",
    "formats",
    "chunking",
    "audio",
    "vad",
    "speakers",
    "speaker_weights",
    "speaker_int8",
    "model",
    "scheduler",
    "config",
    "weights",
    "pipeline",
    "loading",
}

#: What each layer may import besides itself and the root package (``__version__``). The
#: layers not listed (cli, server, and anything new) are constrained by the tests below that
#: look the other way: who may import them.
MAY_IMPORT: dict[str, set[str]] = {
    "constants": set(),
    "cancellation": set(),
    "onnx_session": set(),
    "options": set(),
    "catalogue": set(),
    "logging": set(),
    "web": set(),  # the page is a client of the HTTP API, never of its code
    "batching": set(),
    "keyword_list": set(),  # how people write keywords: read by the settings and every door
    "transcript": {"options"},
    "formats": {"transcript", "options"},
    "chunking": {"options", "constants"},
    "audio": {"constants"},
    "vad": {"constants", "onnx_session"},
    # Diarization's model, clustering and turns: below the pipeline, beside vad/.
    "speakers": {"constants", "onnx_session", "transcript", "options"},
    "speaker_weights": {
        "speakers",
        "weights",
        "catalogue",
        "config",
        "formats",
        "options",
        "transcript",
        "constants",
        "onnx_session",
    },
    # The int8 copy of the speaker model: made in a child process from the calibration clip.
    "speaker_int8": {"speakers", "audio", "constants", "onnx_session", "transcript", "options"},
    "model": {"constants", "onnx_session", "catalogue", "transcript", "options"},
    "scheduler": {"cancellation", "batching"},
    "config": {"catalogue", "formats", "options", "transcript", "keyword_list"},
    "weights": {"catalogue", "config", "formats", "options", "transcript"},
    "pipeline": {
        "audio",
        "vad",
        "chunking",
        "model",
        "options",
        "transcript",
        "constants",
        "cancellation",
    },
    "loading": {"config", "model", "weights", "catalogue", "formats", "options", "transcript"},
    # Durable jobs run over the core: its sessions (admission, the run, a failure's reading).
    "jobs": {"config", "audio", "constants", "transcript", "service", "speakers"},
    # The service core: below every door, knowing none of them.
    "service": BELOW_THE_CORE,
    # The doors: over the core, never over each other (only ``server`` puts them together).
    "api": BELOW_THE_CORE | {"service", "jobs", "web"},
    "wyoming": {
        "service",  # the only way it runs work: admission, the pipeline run, failures
        "audio",  # the pushed-audio source its utterances feed
        "config",
        "formats",
        "transcript",
        "options",
        "constants",
        "cancellation",
    },
}


@pytest.mark.parametrize("layer", sorted(MAY_IMPORT))
def test_layer_imports_only_what_the_document_allows(layer: str) -> None:
    allowed = MAY_IMPORT[layer] | {layer, ROOT}
    wrong = sorted(
        f"{_short(module)} -> {_short(target)}"
        for module, targets in GRAPH.items()
        if _layer(module) == layer
        for target in targets
        if _layer(target) not in allowed
    )
    assert wrong == []


def test_weights_never_reaches_the_engine() -> None:
    """The downloader sits below the engine: settings → model wiring lives in ``loading``."""
    assert {m for m in _reachable(f"{ROOT}.weights") if _layer(m) == "model"} == set()


@pytest.mark.parametrize(
    ("layer", "importers"),
    [("api", {"server"}), ("wyoming", {"server"}), ("server", {"cli"})],
)
def test_only_the_composition_root_puts_the_doors_together(layer: str, importers: set[str]) -> None:
    """The doors never import each other: ``server`` builds both over one core, ``cli`` runs it."""
    wrong = sorted(
        f"{_short(module)} -> {_short(target)}"
        for module, targets in GRAPH.items()
        if _layer(module) not in importers | {layer}
        for target in targets
        if _layer(target) == layer
    )
    assert wrong == []


def test_the_core_never_reaches_a_door() -> None:
    """Not even indirectly: the core is what the doors share, so it cannot depend on one."""
    doors = {"api", "wyoming", "jobs", "web", "server", "cli"}
    for module in GRAPH:
        if _layer(module) == "service":
            reached = {_layer(m) for m in _reachable(module)}
            assert reached & doors == set(), f"{_short(module)} reaches {reached & doors}"


def test_only_the_core_session_runs_the_pipeline() -> None:
    """One run loop: every door and the CLI go through ``service/session.py``, the only module
    that imports the pipeline's entry point; only the core reaches the scheduler."""
    pipeline_importers = sorted(
        _short(module) for module, targets in GRAPH.items() if f"{ROOT}.pipeline" in targets
    )
    assert pipeline_importers == ["service.session"]
    scheduler_importers = sorted(
        _short(module)
        for module, targets in GRAPH.items()
        if _layer(module) not in {"scheduler", "service"}
        and any(_layer(target) == "scheduler" for target in targets)
    )
    assert scheduler_importers == []


def test_pipeline_and_scheduler_do_not_know_each_other() -> None:
    """They meet only through the ``infer`` callback that the caller hands the pipeline."""
    for a, b in (("pipeline", "scheduler"), ("scheduler", "pipeline")):
        reached = {_layer(m) for m in _reachable(f"{ROOT}.{a}")}
        assert b not in reached, f"{a} reaches {b}"


def test_no_import_cycles() -> None:
    cycles: list[list[str]] = []
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(module: str) -> None:
        state[module] = 1
        path.append(module)
        for target in sorted(GRAPH[module]):
            if state.get(target) == 1:
                cycles.append([_short(m) for m in path[path.index(target) :]] + [_short(target)])
            elif target not in state:
                visit(target)
        path.pop()
        state[module] = 2

    for module in sorted(GRAPH):
        if module not in state:
            visit(module)
    assert cycles == []


def test_every_module_is_described_in_the_architecture_document() -> None:
    """A module the document does not name is one a newcomer cannot place."""
    text = (REPO_ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    named = set(re.findall(r"`([a-z0-9_/]+\.py)`", text))
    missing = sorted(
        str(path.relative_to(PACKAGE))
        for path in PACKAGE.rglob("*.py")
        if path.name not in {"__init__.py", "__main__.py"}
        and str(path.relative_to(PACKAGE)) not in named
    )
    assert missing == []
