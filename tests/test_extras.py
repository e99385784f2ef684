"""Every third-party module an optional part imports is installed by the extra its error message
names, and those messages say what works from a checkout (the package is not on an index)."""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
from pathlib import Path

import pytest

from frame_generation_pipeline.errors import install_hint

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "frame_generation_pipeline"
#: Optional part (a module or a folder of them) -> the file whose install message names its extra, and the extra.
PARTS = {
    "app/serve": ("app/cli/serve_commands.py", "serve"),
    "app/farm": ("app/farm/runner.py", "farm"),
    "models/hubert.py": ("models/hubert.py", "hubert"),
    "integrations/pipecat.py": ("integrations/pipecat.py", "pipecat"),
    "integrations/livekit.py": ("integrations/livekit.py", "livekit"),
    "audio/voice.py": ("audio/voice.py", "voice"),
}


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~\[; ]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def _requirements(key: str) -> set[str]:
    """The distributions pyproject.toml's list `key` names (dependencies, or an extra); no tomllib before 3.11."""
    found = re.search(rf"^{key} = \[(.*?)\]\s*$", (ROOT / "pyproject.toml").read_text(), re.S | re.M)
    assert found, f"pyproject.toml has no {key} list"
    return {_name(requirement) for requirement in re.findall(r'"([^"]+)"', found[1])}


def _imports(part: Path) -> set[str]:
    """Top-level names of the modules the part's files import (relative imports left out)."""
    names = set()
    for path in [part] if part.is_file() else sorted(part.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
                names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("part", sorted(PARTS))
def test_each_optional_part_imports_only_what_its_extra_and_the_core_install(part):
    source, extra = PARTS[part]
    declared = _requirements("dependencies") | _requirements(extra)
    distributions = importlib.metadata.packages_distributions()
    third_party = sorted(_imports(PACKAGE / part) - set(sys.stdlib_module_names) - {"frame_generation_pipeline"})
    assert third_party, "the part imports something of its extra"
    missing = [module for module in third_party if not {_name(d) for d in distributions.get(module, [module])} & declared]
    assert not missing, f"{part} imports {', '.join(missing)}, not installed by [{extra}] or the core"
    text = (PACKAGE / source).read_text()
    named = (f"install_hint({extra!r})", f'extra = "{extra}"', f"`[{extra}]`")  # a message, a backend's extra, a docstring
    assert any(text_ in text for text_ in named), f"{source} names the extra [{extra}]"


def test_install_hints_say_what_works_from_a_checkout(monkeypatch):
    from importlib import metadata

    # make installs the package editable: the hint keeps it so, with the Python running now
    assert install_hint("serve").endswith(f": `{sys.executable} -m pip install -e '.[serve]'`")
    assert install_hint().endswith(f": `{sys.executable} -m pip install -e .`")

    class Copied:  # a plain `pip install .`: its PEP 610 record names the folder, not editable
        def read_text(self, name):
            return '{"dir_info": {}, "url": "file:///somewhere"}' if name == "direct_url.json" else None

    monkeypatch.setattr(metadata, "distribution", lambda name: Copied())
    assert install_hint("voice").endswith(f": `{sys.executable} -m pip install '.[voice]'`")
    for path in PACKAGE.rglob("*.py"):
        assert "frame-generation-pipeline[" not in path.read_text(), f"{path} names a package not on any index"
