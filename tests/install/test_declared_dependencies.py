"""Every distribution the package imports is declared in [project].dependencies, so a
plain `pip install .` brings it (a dependency that arrives only through another one, or
only with the test extra, can vanish)."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("app", "rest_compat")


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()  # PEP 503


def declared_distributions() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return {_normalise(re.split(r"[\[<>=!~;@ ]", spec, maxsplit=1)[0]) for spec in project["dependencies"]}


def imported_modules(root: Path) -> dict[str, str]:
    """Top-level module -> a file importing it, over every import statement (including
    those inside functions and under TYPE_CHECKING)."""
    found: dict[str, str] = {}
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                    names = [node.module]
                else:
                    continue
                for name in names:
                    found.setdefault(name.split(".")[0], str(path.relative_to(root)))
    return found


def undeclared_imports() -> dict[str, str]:
    declared = declared_distributions()
    dists = packages_distributions()
    missing: dict[str, str] = {}
    for module, where in imported_modules(ROOT).items():
        if module in sys.stdlib_module_names or module in PACKAGES:
            continue
        providers = {_normalise(d) for d in dists.get(module, ())}
        assert providers, f"{module} (imported in {where}) is not installed at all"
        if not providers & declared:
            missing[" or ".join(sorted(providers))] = f"{module}, imported in {where}"
    return missing


def test_every_imported_distribution_is_declared() -> None:
    assert undeclared_imports() == {}


def test_the_check_sees_an_undeclared_import(tmp_path, monkeypatch) -> None:
    """The check itself: a module importing a distribution only the test extra brings."""
    for package in PACKAGES:
        (tmp_path / package).mkdir()
    (tmp_path / "app" / "probe.py").write_text("def f():\n    import pytest\n    from yaml import safe_load\n")
    found = imported_modules(tmp_path)
    assert found == {"pytest": "app/probe.py", "yaml": "app/probe.py"}
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    (tmp_path / "pyproject.toml").write_text('[project]\ndependencies = ["PyYAML>=6"]\n')
    assert set(undeclared_imports()) == {"pytest"}
