"""The layer contracts (pyproject [tool.importlinter]) hold under plain `lint-imports`, see the whole package,
cover every core module, and fail on a planted violation."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import grimp
import pytest

ROOT = Path(__file__).resolve().parents[1]
LINT_IMPORTS = str(Path(sys.executable).with_name("lint-imports"))

#: Top-level parts of `groomguard` that are layers of their own (named in the layers contract) or no code.
NOT_CORE = {"__init__", "__main__", "app", "adapters", "models", "store", "testing"}


def _config() -> dict[str, object]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def _contracts() -> dict[str, dict[str, object]]:
    return {c["id"]: c for c in _config()["tool"]["importlinter"]["contracts"]}  # type: ignore[index]


def _installed_modules() -> set[str]:
    """Every module the package-dir mapping installs, named from the .py files of each mapped folder."""
    mapping: dict[str, str] = _config()["tool"]["setuptools"]["package-dir"]  # type: ignore[index]
    modules = set()
    for package, folder in mapping.items():
        for source in (ROOT / folder).rglob("*.py"):  # rglob does not follow bot/adapters and bot/models
            parts = source.relative_to(ROOT / folder).with_suffix("").parts
            modules.add(".".join([package, *(parts[:-1] if parts[-1] == "__init__" else parts)]))
    return modules


def _lint(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`lint-imports` as the before-stop hook runs it: in `cwd`, reading its pyproject.toml."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run(
        [LINT_IMPORTS, *args], cwd=cwd, env=env, capture_output=True, text=True, check=False, timeout=120
    )


def test_every_core_module_is_under_the_core_contract() -> None:
    """A new module in bot/ is core unless it belongs to a named layer, so it must be listed (or the test says so)."""
    present = {p.stem for p in (ROOT / "bot").glob("*.py")} | {
        p.name for p in (ROOT / "bot").iterdir() if p.is_dir() and (p / "__init__.py").exists()
    }
    listed = {m.removeprefix("groomguard.") for m in _contracts()["core"]["source_modules"]}  # type: ignore[union-attr]
    assert present - NOT_CORE == listed, "add new core modules to the 'core' contract in pyproject.toml"
    layered = {m.removeprefix("groomguard.") for m in _contracts()["layers"]["layers"]}  # type: ignore[union-attr]
    assert layered == NOT_CORE - {"__init__", "__main__", "models"}


def test_the_import_graph_is_the_whole_installed_package() -> None:
    """grimp walks the one folder of `groomguard` (bot/); the links bot/adapters and bot/models put the other
    mapped folders where the installed package has them, so its graph holds every module, no more."""
    for name in ("adapters", "models"):
        link = ROOT / "bot" / name
        assert link.is_symlink() and link.resolve() == ROOT / name, f"bot/{name} must link to ../{name}"
    graph = grimp.build_graph("groomguard", cache_dir=None)
    assert graph.modules == _installed_modules()


def test_plain_lint_imports_keeps_every_contract() -> None:
    result = _lint(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"Contracts: {len(_contracts())} kept, 0 broken." in result.stdout, result.stdout


def _copy(tmp_path: Path) -> Path:
    """The package sources and pyproject in a temp folder, links kept, with `groomguard` -> bot first on the
    path there (lint-imports puts its working folder first), so the copy is what gets linted."""

    def skip(folder: str, names: list[str]) -> set[str]:
        return {n for n in names if n == "__pycache__" or (Path(folder, n).is_file() and not n.endswith(".py"))}

    for folder in ("bot", "adapters", "models"):
        shutil.copytree(ROOT / folder, tmp_path / folder, symlinks=True, ignore=skip)
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    (tmp_path / "groomguard").symlink_to("bot")
    return tmp_path


@pytest.mark.parametrize(
    ("module", "planted", "contract"),
    [
        ("bot/engine.py", "from groomguard.store.sqlite import SqliteStore", "The core imports no adapter"),
        ("bot/cases.py", "from groomguard.adapters.discord import cards", "The core imports no adapter"),
        ("adapters/matrix/adapter.py", "from groomguard.engine import Engine", "only through groomguard.port"),
        ("adapters/discord/cards.py", "from groomguard.adapters.discord import cog", "Discord: the cog"),
        ("adapters/webhook.py", "from groomguard.adapters.matrix import store", "Platform adapters do not"),
        ("bot/store/sqlite.py", "from groomguard.app import cli", "Layers: testing > app"),
        ("bot/store/base.py", "from groomguard.detectors import base", "Store backends take record types"),
    ],
)
def test_a_planted_violation_breaks_its_contract(tmp_path: Path, module: str, planted: str, contract: str) -> None:
    tree = _copy(tmp_path)
    clean = _lint(tree, "--no-cache")
    assert clean.returncode == 0, clean.stdout + clean.stderr  # the copy itself is linted, and clean
    target = tree / module
    target.write_text(target.read_text(encoding="utf-8") + f"\n{planted}  # planted by the test\n", encoding="utf-8")
    result = _lint(tree, "--no-cache")
    assert result.returncode != 0
    # The "Broken contracts" section names each broken contract in full on one line.
    assert contract in result.stdout.split("Broken contracts")[-1], result.stdout
