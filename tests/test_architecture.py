"""The layer contracts (pyproject [tool.importlinter]) hold, cover every core module, and fail on a violation."""

from __future__ import annotations

import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
import lint_imports  # noqa: E402

#: Top-level parts of `groomguard` that are layers of their own (named in the layers contract) or no code.
NOT_CORE = {"__init__", "__main__", "app", "adapters", "models", "store", "testing"}


def _contracts() -> dict[str, dict[str, object]]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    return {c["id"]: c for c in config["tool"]["importlinter"]["contracts"]}


def test_every_core_module_is_under_the_core_contract() -> None:
    """A new module in bot/ is core unless it belongs to a named layer, so it must be listed (or the test says so)."""
    present = {p.stem for p in (ROOT / "bot").glob("*.py")} | {
        p.name for p in (ROOT / "bot").iterdir() if p.is_dir() and (p / "__init__.py").exists()
    }
    listed = {m.removeprefix("groomguard.") for m in _contracts()["core"]["source_modules"]}  # type: ignore[union-attr]
    assert present - NOT_CORE == listed, "add new core modules to the 'core' contract in pyproject.toml"
    layered = {m.removeprefix("groomguard.") for m in _contracts()["layers"]["layers"]}  # type: ignore[union-attr]
    assert layered == NOT_CORE - {"__init__", "__main__", "models"}


def test_the_contracts_hold(tmp_path: Path) -> None:
    result = lint_imports.lint(lint_imports.mirror(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.parametrize(
    ("module", "planted", "contract"),
    [
        ("groomguard/engine.py", "from groomguard.store.sqlite import SqliteStore", "The core imports no adapter"),
        ("groomguard/cases.py", "from groomguard.adapters.discord import cards", "The core imports no adapter"),
        (
            "groomguard/adapters/matrix/adapter.py",
            "from groomguard.engine import Engine",
            "only through groomguard.port",
        ),
        ("groomguard/adapters/discord/cards.py", "from groomguard.adapters.discord import cog", "Discord: the cog"),
        ("groomguard/store/sqlite.py", "from groomguard.app import cli", "Layers: testing > app"),
    ],
)
def test_a_planted_violation_breaks_its_contract(tmp_path: Path, module: str, planted: str, contract: str) -> None:
    tree = lint_imports.mirror(tmp_path)
    target = tree / module
    target.write_text(target.read_text(encoding="utf-8") + f"\n{planted}  # planted by the test\n", encoding="utf-8")
    result = lint_imports.lint(tree)
    assert result.returncode != 0
    # The "Broken contracts" section names each broken contract in full on one line.
    assert contract in result.stdout.split("Broken contracts")[-1], result.stdout
