"""The package's layers import one way.

dags/plugins → operators, api → pipeline → hooks → storage → config → core

A module may import its own layer (without cycles) or any layer below it; `core/`
never imports Airflow. The walk reads the source (no imports run), so a lazy import
inside a function counts the same as one at the top.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "include" / "video_pipeline"
PREFIX = "include.video_pipeline."

# Lowest first. A module's layer is its first dotted part below the package.
LAYERS = ["core", "config", "storage", "hooks", "pipeline", "operators", "api"]
LAYER_RANK = {name: rank for rank, name in enumerate(LAYERS)}
# operators and api are both entry points (Airflow tasks, the plugin's HTTP app): neither imports the other.
SIBLINGS = {frozenset({"operators", "api"})}


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module:
            if node.level:
                raise AssertionError(f"{path}: relative import; the project imports by full name")
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            continue
        found.update(name for name in names if name.startswith(PREFIX) or name.split(".")[0] == "airflow")
    return found


MODULES = {_module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}
GRAPH = {
    name: {imported.removeprefix(PREFIX) for imported in _imports(path) if imported.startswith(PREFIX)}
    for name, path in MODULES.items()
}


def _resolve(imported: str) -> str:
    """`core.media.Probe`-style names are not modules: walk up to the module that holds them."""
    while imported and imported not in MODULES:
        imported = imported.rpartition(".")[0]
    return imported


def _layer(module: str) -> str:
    return module.split(".")[0]


def test_every_module_has_a_layer() -> None:
    unknown = {module for module in MODULES if module and _layer(module) not in LAYER_RANK}
    assert not unknown, f"modules outside the known layers: {sorted(unknown)}"


@pytest.mark.parametrize("module", sorted(m for m in MODULES if m))
def test_imports_point_down(module: str) -> None:
    upward = []
    for imported in sorted(GRAPH[module]):
        target = _resolve(imported)
        here, there = _layer(module), _layer(target)
        if LAYER_RANK[there] > LAYER_RANK[here] or frozenset({here, there}) in SIBLINGS:
            upward.append(target)
    assert not upward, f"{module} ({_layer(module)}) imports a higher layer: {upward}"


# The SDKs of the systems the hooks talk to. core/ is pure logic: it is tested without any of
# them running, and a hook is the one place each is used.
SDKS = {"airflow", "google", "boto3", "botocore", "psycopg2", "faster_whisper", "whisper", "openai", "ffmpeg"}


def _top_level_imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module.split(".")[0])
        elif isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
    return found


def test_core_is_free_of_airflow_and_the_sdks() -> None:
    offenders = {
        module: sorted(_top_level_imports(path) & SDKS) for module, path in MODULES.items() if module.startswith("core")
    }
    assert not {m: names for m, names in offenders.items() if names}


def test_no_import_cycles() -> None:
    cycles: list[list[str]] = []
    done: set[str] = set()

    def visit(module: str, path: list[str]) -> None:
        if module in path:
            cycles.append([*path[path.index(module) :], module])
            return
        if module in done:
            return
        for imported in GRAPH.get(module, ()):
            target = _resolve(imported)
            # A package's __init__ re-exports its modules: that edge is the package itself.
            if target and target != module and not target.startswith(module + "."):
                visit(target, [*path, module])
        done.add(module)

    for module in MODULES:
        visit(module, [])
    assert not cycles, f"import cycles: {cycles}"


def test_the_walk_sees_the_layers() -> None:
    # Guards the walk itself: if it found nothing, every test above would pass vacuously.
    assert {"core", "storage", "hooks", "pipeline", "operators"} <= {_layer(m) for m in MODULES if m}
    assert any(_layer(_resolve(i)) == "hooks" for m in MODULES if m.startswith("operators") for i in GRAPH[m])


# A module a reader can hold in their head; past this it usually mixes jobs (split it into a
# package along them, as core/media/ and hooks/ffmpeg/ are).
MAX_MODULE_LINES = 400
SOURCE_FOLDERS = ("include", "dags", "plugins", "tools", "bench", "deploy")


def test_no_module_is_over_400_lines() -> None:
    sizes = {
        path.relative_to(ROOT).as_posix(): len(path.read_text(encoding="utf-8").splitlines())
        for folder in SOURCE_FOLDERS
        for path in (ROOT / folder).rglob("*.py")
    }
    assert len(sizes) > 100  # the walk found the code
    assert not {name: lines for name, lines in sizes.items() if lines > MAX_MODULE_LINES}
