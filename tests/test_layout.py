"""The layout's promises: stages import only stages below them, every module says what it owns in
its first line and stays small, and nothing in the repository reaches outside it."""

from __future__ import annotations

import ast
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "frame_generation_pipeline"

#: The data flow, bottom to top: a module may import from its own layer and the layers below.
LAYERS = {
    "version": 0, "errors": 0, "contract": 0, "checks": 0, "files": 0, "devices": 0, "precisions": 0, "__init__": 0,
    "inputs": 1,
    "audio": 2,
    "models": 3,
    "render": 4,
    "outputs": 5,
    "ports": 6,
    "options": 7, "plan": 7, "pipeline": 7, "frame_generator": 7, "image_processor": 7, "unet_model": 7,
    "live": 8,
    "prepare": 6,
    "app": 9, "__main__": 9, "integrations": 9,
}
#: Size bounds: a module in src/, a function or method in src/ (from `def` to its last line), a file in tests/.
MAX_LINES, MAX_FUNCTION_LINES, MAX_TEST_FILE_LINES = 300, 60, 450


def _modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def _dotted(path: Path) -> list[str]:
    parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
    return parts


def _layer(parts: list[str]) -> int:
    return LAYERS[parts[0]]


def _imports(path: Path) -> list[tuple[int, list[str]]]:
    """(line, package-relative module parts) of every import of this package in `path`, lazy ones included."""
    tree = ast.parse(path.read_text())
    here = _dotted(path)
    package = here[:-1] if here[-1] != "__init__" else here[:-1]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)] if node.level > 1 else package
                target = base + (node.module.split(".") if node.module else [])
                names = [target + [alias.name] for alias in node.names] if not node.module else [target]
                found += [(node.lineno, name) for name in names]
            elif node.module and node.module.split(".")[0] == "frame_generation_pipeline":
                found.append((node.lineno, node.module.split(".")[1:]))
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "frame_generation_pipeline":
                    found.append((node.lineno, alias.name.split(".")[1:]))
    return [(line, parts) for line, parts in found if parts]


def test_every_module_is_placed_in_a_layer():
    unplaced = [str(path) for path in _modules() if _dotted(path)[0] not in LAYERS]
    assert unplaced == []


def test_nothing_imports_upward():
    upward = []
    for path in _modules():
        mine = _layer(_dotted(path))
        for line, target in _imports(path):
            if target[0] in LAYERS and LAYERS[target[0]] > mine:
                upward.append(f"{path.relative_to(PACKAGE)}:{line} imports {'.'.join(target)}")
    assert upward == []


def test_integrations_use_the_live_engine_not_the_app():
    offenders = [f"{path.relative_to(PACKAGE)}:{line}" for path in (PACKAGE / "integrations").rglob("*.py")
                 for line, target in _imports(path) if target[0] in ("app", "__main__")]
    assert offenders == []


def test_every_module_says_what_it_owns_in_its_first_line():
    for path in _modules():
        text = path.read_text()
        docstring = ast.get_docstring(ast.parse(text))
        assert docstring and text.lstrip().startswith('"""'), f"{path} has no docstring on its first line"


def _oversized(paths: list[Path], limit: int, what: str) -> list[str]:
    """'path: N lines (a `what` over `limit`)' for each of `paths` longer than `limit` lines."""
    sizes = {path: len(path.read_text().splitlines()) for path in paths}
    return [f"{path.relative_to(ROOT)}: {lines} lines (a {what} over {limit})" for path, lines in sizes.items() if lines > limit]


def _long_functions(path: Path) -> list[str]:
    """'path:line name: N lines' for every function or method of `path` (nested ones too) over the bound."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            lines = node.end_lineno - node.lineno + 1 if node.end_lineno else 0
            if lines > MAX_FUNCTION_LINES:
                found.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name}: {lines} lines "
                             f"(a function over {MAX_FUNCTION_LINES})")
    return found


def test_modules_functions_and_test_files_stay_small():
    offenders = [*_oversized(_modules(), MAX_LINES, "module"),
                 *(found for path in _modules() for found in _long_functions(path)),
                 *_oversized(sorted((ROOT / "tests").rglob("*.py")), MAX_TEST_FILE_LINES, "test file")]
    assert not offenders, "split these:\n" + "\n".join(offenders)


def _public_definitions(tree: ast.Module):
    """Module-level functions and classes, and the methods of those classes, not named with `_`."""
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and not node.name.startswith("_"):
            yield node
            if isinstance(node, ast.ClassDef):
                yield from (item for item in node.body if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef))
                            and not item.name.startswith("_"))


#: Methods whose meaning is fixed by what they override (torch's forward, logging's and argparse's hooks).
OVERRIDES = {"forward", "formatMessage", "error"}


def test_public_functions_and_classes_have_docstrings():
    missing = [f"{path.relative_to(PACKAGE)}:{node.lineno} {node.name}" for path in _modules()
               for node in _public_definitions(ast.parse(path.read_text()))
               if ast.get_docstring(node) is None and node.name not in OVERRIDES]
    assert missing == []


def _tracked_files() -> list[Path]:
    listing = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True, text=True)
    if listing.returncode != 0:
        pytest.skip("not a git checkout")
    return [ROOT / name for name in listing.stdout.splitlines() if (ROOT / name).is_file()]


def test_nothing_in_the_repository_reaches_outside_it():
    needle = "../" + "shared"
    offenders = [str(path.relative_to(ROOT)) for path in _tracked_files()
                 if path.suffix in {".py", ".md", ".toml", ".cfg", ".txt", ".json", ""} and needle in path.read_text(errors="ignore")]
    assert offenders == []


def test_benchmarks_import_nothing_from_the_tests():
    for path in (ROOT / "benchmarks").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            modules = [node.module or ""] if isinstance(node, ast.ImportFrom) else [a.name for a in getattr(node, "names", [])] \
                if isinstance(node, ast.Import) else []
            assert not any(module == "tests" or module.startswith("tests.") for module in modules), path


def _module_of(parts: list[str]) -> tuple[str, ...] | None:
    """The package module that import target `parts` names (a module, or a name inside one)."""
    for candidate in (parts, parts[:-1]):
        if candidate and ((PACKAGE.joinpath(*candidate).with_suffix(".py")).is_file()
                          or (PACKAGE.joinpath(*candidate) / "__init__.py").is_file()):
            return tuple(candidate)
    return None


def test_no_import_cycle_between_modules():
    graph: dict[tuple[str, ...], set[tuple[str, ...]]] = {}
    for path in _modules():
        here = tuple(_dotted(path)[:-1]) if path.name == "__init__.py" else tuple(_dotted(path))
        targets = {_module_of(parts) for _, parts in _imports(path)}
        # a package importing its own submodules (the lazy registries) is not a cycle back to it
        graph[here] = {t for t in targets if t is not None and t != here and t[: len(here)] != here}
    cycles = []

    def visit(node: tuple[str, ...], trail: list[tuple[str, ...]]) -> None:
        for target in sorted(graph.get(node, ())):
            if target in trail:
                cycles.append(" -> ".join(".".join(m) for m in trail[trail.index(target):] + [target]))
            elif len(trail) < 12:
                visit(target, trail + [target])

    for start in sorted(graph):
        visit(start, [start])
    assert cycles == []


def test_only_the_applications_change_process_wide_state():
    """The allocator and the CPU budget are the process's: the CLI, server and farm set them, the library never."""
    callers = []
    for path in _modules():
        if _dotted(path)[0] == "app" or path.name == "devices.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", "")) in (
                    "tune_allocator", "set_cpu_budget", "set_num_threads"):
                callers.append(f"{path.relative_to(PACKAGE)}:{node.lineno}")
    assert callers == []


def test_audio_models_are_told_apart_by_their_interface_not_by_hasattr():
    """SpeechEncoder (models/speech_encoder.py) says what an audio model is: no hasattr(...encoder...) in src."""
    probes = [f"{path.relative_to(PACKAGE)}:{node.lineno}" for path in _modules()
              for node in ast.walk(ast.parse(path.read_text()))
              if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "hasattr" and node.args
              and any(word in ast.unparse(node).lower() for word in ("encoder", "hubert", "audio_model", "encode"))]
    assert probes == []


def test_models_are_told_apart_by_their_interface_not_by_getattr():
    """InferenceModel (models/backends/base.py) says what a network model is, stand-ins included: no
    getattr(model, ...) or hasattr(model, ...) in src, whatever the model is called there."""
    probes = [f"{path.relative_to(PACKAGE)}:{node.lineno}" for path in _modules()
              for node in ast.walk(ast.parse(path.read_text()))
              if isinstance(node, ast.Call) and getattr(node.func, "id", None) in ("getattr", "hasattr") and node.args
              and "model" in ast.unparse(node.args[0]).lower()]
    assert probes == []
