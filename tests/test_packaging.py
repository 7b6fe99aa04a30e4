"""Packaging: one `groomguard` import namespace, loadable into a discord.py project with its own bot.py and models/.

The commonest discord.py layout has a `bot.py` main file, a `cogs/` package and often a `models/` package;
GroomGuard's import names must not clash with any of them, and its wheel installs no generic top-level name.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
UNPACKAGED = (".git", ".venv", ".synapse-venv", "build", "*.egg-info", "__pycache__", "*.db*", ".pytest_cache")

USER_BOT = '''
"""The user's own main file, as discord.py's docs lay a project out."""
import asyncio, json, sys

import discord
from discord.ext import commands

import models  # the user's own models package (e.g. SQLAlchemy tables)


async def main() -> None:
    intents = discord.Intents.default()
    intents.members = True
    intents.message_content = True
    bot = commands.Bot(command_prefix="!", intents=intents)
    await bot._async_setup_hook()  # what bot.start() does before connecting; no Discord connection here
    await bot.load_extension("cogs.greet")
    await bot.load_extension("groomguard.adapters.discord")
    import groomguard.models

    print(json.dumps({
        "cogs": sorted(bot.cogs),
        "commands": sorted(c.name for c in bot.tree.get_commands()),
        "user_models": models.USER_TABLE,
        "groomguard_models": groomguard.models.__name__,
        "bot_module": sys.modules["__main__"].__file__,
    }))
    await bot.close()


asyncio.run(main())
'''

GREET_COG = """
from discord.ext import commands


class Greet(commands.Cog):
    @commands.command()
    async def hello(self, ctx: commands.Context) -> None:
        await ctx.send("hi")


async def setup(bot: commands.Bot) -> None:
    await bot.add_cog(Greet())
"""


def test_extension_loads_into_a_project_with_its_own_bot_py_models_and_cogs(tmp_path: Path) -> None:
    project = tmp_path / "mybot"
    (project / "cogs").mkdir(parents=True)
    (project / "models").mkdir()
    (project / "bot.py").write_text(textwrap.dedent(USER_BOT), encoding="utf-8")
    (project / "cogs" / "__init__.py").write_text("", encoding="utf-8")
    (project / "cogs" / "greet.py").write_text(textwrap.dedent(GREET_COG), encoding="utf-8")
    (project / "models" / "__init__.py").write_text('USER_TABLE = "users"\n', encoding="utf-8")
    (project / "groomguard.toml").write_text(
        f'[store]\npath = "{project / "gg.db"}"\n[discord]\nmod_channel_id = 1\n', encoding="utf-8"
    )
    done = subprocess.run(
        [sys.executable, "bot.py"], cwd=project, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["cogs"] == ["Greet", "GroomGuard"]
    assert result["commands"] == ["groomguard"]
    assert result["user_models"] == "users", "the user's models package was shadowed"
    assert result["groomguard_models"] == "groomguard.models"
    assert Path(result["bot_module"]).resolve() == (project / "bot.py").resolve()


@pytest.mark.slow
def test_wheel_installs_only_the_groomguard_namespace_with_its_data(tmp_path: Path) -> None:
    # Build from a clean copy: setuptools leaves build/ in the source tree, and a stale one would be packaged.
    source = tmp_path / "src"
    shutil.copytree(REPO, source, ignore=shutil.ignore_patterns(*UNPACKAGED))
    built = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            str(REPO),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert built.returncode == 0, built.stderr[-2000:]
    (wheel,) = tmp_path.glob("groomguard-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    top = {n.split("/", 1)[0] for n in names}
    assert top == {"groomguard", next(t for t in top if t.endswith(".dist-info"))}, top
    for shipped in (
        "groomguard/models/grooming.onnx",
        "groomguard/models/grooming.vocab",
        "groomguard/models/multilingual/head.npz",
        "groomguard/store/migrations/001_initial.sql",
        "groomguard/store/migrations_pg/001_initial.sql",
        "groomguard/templates/child_notice.toml",
        "groomguard/adapters/matrix/synapse_module.py",
        "groomguard/adapters/discord/cog.py",
    ):
        assert shipped in names, f"{shipped} missing from the wheel"
    entry = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
    assert "groomguard = groomguard.app.cli:app" in entry
    # Run from the unpacked wheel (it comes first on sys.path, before the editable checkout): the shipped
    # models, stages and migrations are found inside the package, not beside a source checkout.
    unpacked = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(unpacked)
    probe = (
        "import json, groomguard, groomguard.classifier as c, groomguard.stages as s\n"
        "model = c.load_default_classifier()\n"
        "print(json.dumps({'pkg': groomguard.__file__, 'models': str(c.MODELS_DIR), 'stages': str(s.DEFAULT_STAGES_PATH),"
        " 'score': model.classify(['send me a pic'])[0]}))\n"
    )
    ran = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(unpacked)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert ran.returncode == 0, ran.stderr[-2000:]
    where = json.loads(ran.stdout.strip().splitlines()[-1])
    for key in ("pkg", "models", "stages"):
        assert Path(where[key]).resolve().is_relative_to(unpacked.resolve()), where
    assert 0.0 <= where["score"] <= 1.0
