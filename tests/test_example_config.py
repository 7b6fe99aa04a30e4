"""examples/groomguard.toml documents every section and key, with comments, and passes check-config."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from groomguard.app.cli import app
from groomguard.config import Settings
from pydantic import BaseModel
from typer.testing import CliRunner

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "groomguard.toml"
#: Sections another part of the project documents in the example itself (the web view adds its own).
ELSEWHERE = {"web"}


def _sections() -> dict[str, type[BaseModel]]:
    return {
        name: info.annotation  # type: ignore[misc]
        for name, info in Settings.model_fields.items()
        if name not in ELSEWHERE and isinstance(info.annotation, type) and issubclass(info.annotation, BaseModel)
    }


def test_the_example_passes_check_config() -> None:
    result = CliRunner().invoke(app, ["check-config", str(EXAMPLE)])
    assert result.exit_code == 0, result.output
    assert "OK" in result.output


def test_every_section_and_key_is_in_the_example_with_a_comment() -> None:
    text = EXAMPLE.read_text(encoding="utf-8")
    tables = tomllib.loads(text)
    for section, model in _sections().items():
        if section == "detectors":
            for detector, sub in model.model_fields.items():
                assert detector in tables["detectors"], f"[detectors.{detector}] is missing"
                header = re.search(rf"^\[detectors\.{detector}\][^\n]*#", text, re.MULTILINE)
                assert header, f"[detectors.{detector}] has no comment saying what it does"
                for key in sub.annotation.model_fields:  # type: ignore[union-attr]
                    assert re.search(rf"^#?\s*{key}\s*=", text, re.MULTILINE), f"detectors.{detector}.{key}"
            continue
        assert f"[{section}]" in text, f"[{section}] is missing from the example"
        body = text.split(f"[{section}]", 1)[1].split("\n[", 1)[0]
        assert "#" in body, f"[{section}] has no comments"
        for key in model.model_fields:
            # Set, or shown commented out (secrets, paths with no default) — never undocumented.
            assert re.search(rf"^#?\s*\[?{section}\.{key}|^#?\s*{key}\s*=", body, re.MULTILINE) or (
                re.search(rf"^#\s*\[{section}\.{key}", text, re.MULTILINE)
            ), f"{section}.{key} is not in the example"
    # Secrets are never written into the example, only their files or variables.
    assert not re.search(r"^\s*(token|secret|access_token|password)\s*=", text, re.MULTILINE)


def test_allow_moderator_events_is_documented() -> None:
    text = EXAMPLE.read_text(encoding="utf-8")
    assert "allow_moderator_events = false" in text
    docs = (EXAMPLE.parents[1] / "docs" / "webhook.md").read_text(encoding="utf-8")
    assert "allow_moderator_events" in docs and "moderator_decision" in docs
