"""Config: defaults, TOML, environment overrides, and every problem reported with key and hint."""

from __future__ import annotations

from pathlib import Path

import pytest
from groomguard.config import ConfigError, load_settings, read_secret

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "groomguard.toml"


def test_example_config_is_valid() -> None:
    settings = load_settings(EXAMPLE)
    assert settings.cases.alert_threshold == 0.6
    assert settings.notices.helpline().contact == "0800 1111"


def test_env_overrides_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "c.toml"
    path.write_text("[detectors.fan_out]\nmin_minors = 4\n[cases]\nalert_threshold = 0.5\n")
    monkeypatch.setenv("GROOMGUARD_CASES__ALERT_THRESHOLD", "0.8")
    settings = load_settings(path)
    assert settings.cases.alert_threshold == 0.8
    assert settings.detector("fan_out").min_minors == 4  # type: ignore[attr-defined]


def test_every_problem_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text('[cases]\nalert_threshold = 2\ntypo = 1\n[detectors.fan_out]\nmin_minors = "many"\n[nonsense]\n')
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    by_key = {p.key: p for p in info.value.problems}
    assert set(by_key) == {"cases.alert_threshold", "cases.typo", "detectors.fan_out.min_minors", "nonsense"}
    assert "less than or equal to 1" in by_key["cases.alert_threshold"].problem
    assert "alert" in by_key["cases.alert_threshold"].hint
    assert "half_life_hours" in by_key["cases.typo"].hint
    assert "store" in by_key["nonsense"].hint


def test_broken_toml_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "broken.toml"
    path.write_text("[cases\nalert_threshold = 0.5\n")
    with pytest.raises(ConfigError, match="line 1"):
        load_settings(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="file not found"):
        load_settings(tmp_path / "nope.toml")


def test_secret_from_file_and_missing(tmp_path: Path) -> None:
    secret = tmp_path / "s"
    secret.write_text("hunter2\n")
    assert read_secret(None, secret, "webhook.secret") == "hunter2"
    with pytest.raises(ConfigError) as info:
        read_secret(None, None, "webhook.secret")
    assert "GROOMGUARD_WEBHOOK__SECRET" in str(info.value)


@pytest.mark.parametrize("raw", [b"\r", b"[engine]\rbatch_wait_ms = 1\r", b"\xff\xfe"])
def test_a_file_the_settings_loader_cannot_parse_is_a_config_error(tmp_path: Path, raw: bytes) -> None:
    # Found by the config fuzzer: a lone carriage return passed the syntax check (read as text, with
    # universal newlines) and then crashed the settings loader (which reads bytes) with a traceback.
    path = tmp_path / "groomguard.toml"
    path.write_bytes(raw)
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(path)
