"""Run import-linter's contracts (pyproject [tool.importlinter]) over the `groomguard` package as it installs.

import-linter (grimp) finds a package's modules by walking its one folder on disk, but setuptools'
package-dir mapping spreads `groomguard` over bot/, adapters/ and models/. So the sources are mirrored
into a temporary tree shaped like the installed package (groomguard/, groomguard/adapters/, ...) and
`lint-imports` runs on that. Exit status: lint-imports' own (0 when every contract is kept).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def mirror(dest: Path, root: Path = ROOT) -> Path:
    """Copy every .py file of the package-dir mapping into `dest`, nested as installed; returns `dest`."""
    config = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))
    mapping: dict[str, str] = config["tool"]["setuptools"]["package-dir"]
    for package, folder in mapping.items():
        target = dest.joinpath(*package.split("."))
        for source in (root / folder).rglob("*.py"):
            relative = source.relative_to(root / folder)
            # A nested mapped package (groomguard.adapters) is filled from its own folder, not the parent's.
            if any(part == "__pycache__" for part in relative.parts):
                continue
            out = target / relative
            out.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, out)
    return dest


def lint(tree: Path, config: Path = ROOT / "pyproject.toml") -> subprocess.CompletedProcess[str]:
    """Run lint-imports on a mirrored tree, with it first on the import path."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    command = [str(Path(sys.executable).with_name("lint-imports")), str(config), "--no-cache"]
    return subprocess.run(command, env=env, capture_output=True, text=True, check=False, cwd=tree)


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="groomguard-layers-") as tmp:
        result = lint(mirror(Path(tmp)))
    sys.stdout.write(result.stdout)
    sys.stderr.write(result.stderr)
    return result.returncode


if __name__ == "__main__":
    raise SystemExit(main())
