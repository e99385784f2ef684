"""The README and docs/ cannot drift from the code: every command in their code blocks parses, every
relative link resolves, every Python import they show exists, and docs/layout.md names real files."""

from __future__ import annotations

import argparse
import ast
import importlib
import re
import shlex
from pathlib import Path

import pytest

from frame_generation_pipeline.app.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "frame_generation_pipeline"
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SHELL_LANGUAGES = {"bash", "sh", "shell", "console"}


def _blocks(path: Path) -> list[tuple[str, int, list[str]]]:
    """(language, first line number, lines) of every fenced code block of a Markdown file."""
    blocks, language, start, lines = [], None, 0, []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        fence = re.match(r"\s*```(\S*)", line)
        if fence and language is None:
            language, start, lines = fence.group(1), number + 1, []
        elif fence:
            blocks.append((language, start, lines))
            language = None
        elif language is not None:
            lines.append(line)
    return blocks


def _commands() -> list[tuple[str, list[str]]]:
    """(where, argv) of every command line in the shell blocks, continuations joined, comments dropped."""
    found = []
    for path in DOCS:
        for language, start, lines in _blocks(path):
            if language not in SHELL_LANGUAGES:
                continue
            text = "\n".join(lines).replace("\\\n", " ")
            for offset, line in enumerate(text.splitlines()):
                argv = shlex.split(line, comments=True)
                if argv and argv[0] == "$":
                    argv = argv[1:]
                if argv:
                    found.append((f"{path.relative_to(ROOT)}:{start + offset}", argv))
    return found


def _frame_gen_argv(argv: list[str]) -> list[str] | None:
    """The arguments after the program when `argv` runs frame-gen (however it is called), else None."""
    if Path(argv[0]).name == "frame-gen":
        return argv[1:]
    if argv[:3] in (["python", "-m", "frame_generation_pipeline"], ["python3", "-m", "frame_generation_pipeline"]):
        return argv[3:]
    return None


COMMANDS = _commands()
FRAME_GEN = [(where, args) for where, argv in COMMANDS if (args := _frame_gen_argv(argv)) is not None]
MAKE = [(where, argv[1:]) for where, argv in COMMANDS if argv[0] == "make"]
SCRIPTS = [(where, argv[1:]) for where, argv in COMMANDS if argv[0] in ("python", "python3") and argv[1].endswith(".py")]


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def test_the_docs_show_commands_of_every_kind():
    assert len(FRAME_GEN) >= 20 and MAKE and SCRIPTS
    subcommands = set(_subparsers(build_parser()))
    shown = {args[0] for _, args in FRAME_GEN if args and args[0] in subcommands}
    assert shown == subcommands, "every subcommand is shown somewhere"


@pytest.mark.parametrize("where,args", FRAME_GEN, ids=[where for where, _ in FRAME_GEN])
def test_frame_gen_commands_parse(where, args):
    parser = build_parser()
    if args in (["--help"], ["--version"]):
        return
    subcommand = _subparsers(parser).get(args[0]) if args else None
    assert subcommand is not None, f"{where}: no subcommand {args[:1]}"
    known = {option for action in subcommand._actions for option in action.option_strings}
    written = {arg.split("=")[0] for arg in args[1:] if arg.startswith("--")}
    assert written <= known, f"{where}: {args[0]} has no option {sorted(written - known)}"
    if "--help" in args:  # argparse would print the help and exit 0
        return
    try:
        parser.parse_args(args)
    except SystemExit as stop:
        pytest.fail(f"{where}: `frame-gen {' '.join(args)}` does not parse (exit {stop.code})")


@pytest.mark.parametrize("where,targets", MAKE, ids=[where for where, _ in MAKE])
def test_make_targets_exist(where, targets):
    defined = set(re.findall(r"^([A-Za-z][\w-]*)\s*:(?!=)", (ROOT / "Makefile").read_text(), re.MULTILINE))
    assert targets and set(targets) <= defined, f"{where}: make {targets}; the Makefile has {sorted(defined)}"


@pytest.mark.parametrize("where,argv", SCRIPTS, ids=[where for where, _ in SCRIPTS])
def test_scripts_exist_with_their_options(where, argv):
    script = ROOT / argv[0]
    assert script.is_file(), f"{where}: no {argv[0]}"
    source = script.read_text()
    options = {arg.split("=")[0] for arg in argv[1:] if arg.startswith("--")}
    # a --no-X is what argparse.BooleanOptionalAction makes of "--X"
    missing = [option for option in sorted(options) if f'"{option}"' not in source
               and not (option.startswith("--no-") and f'"--{option[5:]}"' in source)]
    assert missing == [], f"{where}: {argv[0]} defines no {missing}"


def _anchors(path: Path) -> set[str]:
    """GitHub's anchors of a Markdown file's headings."""
    anchors, in_block = set(), False
    for line in path.read_text().splitlines():
        if line.lstrip().startswith("```"):
            in_block = not in_block
        heading = re.match(r"#{1,6}\s+(.*)", line)
        if heading and not in_block:
            text = re.sub(r"[^\w\- ]", "", heading.group(1).strip().lower())
            anchors.add(text.replace(" ", "-"))
    return anchors


def _links(path: Path) -> list[str]:
    text = re.sub(r"```.*?```", "", path.read_text(), flags=re.DOTALL)
    text = re.sub(r"`[^`\n]*`", "", text)
    return re.findall(r"\]\(([^)\s]+)\)", text)


@pytest.mark.parametrize("path", DOCS, ids=[str(path.relative_to(ROOT)) for path in DOCS])
def test_relative_links_resolve(path):
    broken = []
    for link in _links(path):
        if re.match(r"[a-z]+:", link):
            continue
        target, _, anchor = link.partition("#")
        resolved = (path.parent / target).resolve() if target else path
        shown = str(resolved.relative_to(ROOT)) if resolved.is_relative_to(ROOT) else str(resolved)
        if not resolved.exists():
            broken.append(f"{link} (no {shown})")
        elif anchor and resolved.suffix == ".md" and anchor not in _anchors(resolved):
            broken.append(f"{link} (no heading #{anchor} in {shown})")
    assert broken == []


def _defined_names(module: Path) -> set[str]:
    tree = ast.parse(module.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names |= {target.id for target in targets if isinstance(target, ast.Name)}
        elif isinstance(node, ast.ImportFrom):
            names |= {alias.asname or alias.name for alias in node.names}
    return names


def _python_imports() -> list[tuple[str, str, str]]:
    """(where, module, name) of every `from frame_generation_pipeline... import name` in a Python block."""
    found = []
    for path in DOCS:
        for language, start, lines in _blocks(path):
            if language != "python":
                continue
            for offset, line in enumerate(lines):
                match = re.match(r"\s*from (frame_generation_pipeline[\w.]*) import (.+)", line)
                if match:
                    for name in match.group(2).split(","):
                        found.append((f"{path.relative_to(ROOT)}:{start + offset}", match.group(1), name.strip()))
    return found


def test_python_imports_shown_exist():
    imports = _python_imports()
    assert imports
    missing = []
    for where, module, name in imports:
        parts = module.split(".")[1:]
        source = PACKAGE.joinpath(*parts).with_suffix(".py")
        if source.is_file():
            defined = _defined_names(source)
        elif PACKAGE.joinpath(*parts, "__init__.py").is_file():  # a package: its lazy names too, unimported
            defined = set(dir(importlib.import_module(module)))
        else:
            defined = set()
        if name not in defined:
            missing.append(f"{where}: {module}.{name}")
    assert missing == []


LAYOUT = ROOT / "docs" / "layout.md"


REPOSITORY_FOLDERS = ("src/", "tests/", "benchmarks/", "docs/", "examples/")


def _layout_paths() -> list[str]:
    """The paths docs/layout.md names: code spans of .py files and folders (package-relative, unless
    they start at one of the repository's folders)."""
    return re.findall(r"`([\w/]+(?:\.py|/))`", LAYOUT.read_text())


def test_layout_names_only_real_modules():
    named = _layout_paths()
    assert len(named) > 20
    missing = [name for name in named if not (ROOT / name if name.startswith(REPOSITORY_FOLDERS) else PACKAGE / name).exists()]
    assert missing == []


def test_layout_names_every_module_below_the_application_layer():
    """The core's rows name each of their modules (the app layer's row names its folders' roles)."""
    named = set(_layout_paths())
    modules = [str(path.relative_to(PACKAGE)) for path in sorted(PACKAGE.rglob("*.py"))
               if path.name not in ("__init__.py", "__main__.py") and path.relative_to(PACKAGE).parts[0] != "app"]
    assert [module for module in modules if module not in named] == []


def test_layout_names_every_folder_of_the_package():
    named = set(_layout_paths())
    folders = sorted(
        f"{path.relative_to(PACKAGE)}/" for path in PACKAGE.rglob("*")
        if path.is_dir() and (path / "__init__.py").is_file()
    )
    assert [folder for folder in folders if folder not in named] == []
