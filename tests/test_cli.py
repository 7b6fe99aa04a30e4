"""The CLI through typer's runner: demo, replay with bad lines, check-config, schema, cases, forget."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from groomguard.app.cli import app
from groomguard.events import dump_event
from groomguard.testing import EventFactory
from typer.testing import CliRunner

runner = CliRunner()


def write_events(path: Path, ev: EventFactory, extra_lines: list[str] = ()) -> None:  # type: ignore[assignment]
    lines = [dump_event(ev.adult("g"))]
    for i in range(10):
        lines += [dump_event(ev.minor(f"k{i}")), dump_event(ev.contact("g", f"k{i}"))]
    path.write_text("\n".join([*lines, *extra_lines]) + "\n")


def test_help_everywhere() -> None:
    for args in ([], ["replay"], ["cases"], ["cases", "list"], ["forget"], ["check-config"], ["run"]):
        result = runner.invoke(app, [*args, "--help"])
        assert result.exit_code == 0, args
        assert "Usage" in result.output


def test_replay_reports_bad_lines_and_counts(tmp_path: Path, ev: EventFactory) -> None:
    data, db, out = tmp_path / "e.jsonl", tmp_path / "x.db", tmp_path / "actions.jsonl"
    write_events(data, ev, ["{not json", '{"type": "teleport"}', ""])
    result = runner.invoke(app, ["replay", str(data), "--db", str(db), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "line 22 skipped" in result.output
    assert "line 23 skipped: type: unknown event type" in result.output
    assert "bad lines skipped" in result.output
    actions = [json.loads(line) for line in out.read_text().splitlines()]
    assert actions and actions[0]["kind"] == "mod_alert" and actions[0]["suspect"] == "g"

    listed = runner.invoke(app, ["cases", "list", "--db", str(db)])
    assert "g" in listed.output and "open" in listed.output
    shown = runner.invoke(app, ["cases", "show", "1", "--db", str(db)])
    assert shown.exit_code == 0 and "Contacting many children" in shown.output and "fan_out" not in shown.output
    assert runner.invoke(app, ["cases", "show", "99", "--db", str(db)]).exit_code == 1

    erased = runner.invoke(app, ["forget", "g", "--db", str(db)])
    assert erased.exit_code == 0 and "erased g" in erased.output and "cases" in erased.output
    assert "nothing stored" in runner.invoke(app, ["forget", "g", "--db", str(db)]).output


def test_replay_missing_file(tmp_path: Path) -> None:
    result = runner.invoke(app, ["replay", str(tmp_path / "nope.jsonl")])
    assert result.exit_code == 1 and "no such file" in result.output


def test_check_config(tmp_path: Path) -> None:
    good = runner.invoke(
        app, ["check-config", str(Path(__file__).resolve().parents[1] / "examples" / "groomguard.toml")]
    )
    assert good.exit_code == 0 and "OK" in good.output
    bad = tmp_path / "bad.toml"
    bad.write_text("[engine]\nbatch_size = 0\n")
    result = runner.invoke(app, ["check-config", str(bad)])
    assert result.exit_code == 1
    assert "engine.batch_size" in result.output and "fix:" in result.output


def test_schema_is_json() -> None:
    result = runner.invoke(app, ["schema"])
    assert result.exit_code == 0
    assert "message_sent" in json.loads(result.output)["discriminator"]["mapping"]


def test_demo_prints_alerts_and_summary(tmp_path: Path) -> None:
    result = runner.invoke(app, ["demo", "--db", str(tmp_path / "demo.db")])
    assert result.exit_code == 0, result.output
    assert "case #1" in result.output and "events/s" in result.output
    assert "private notice to" in result.output and "Childline" in result.output


def test_run_needs_something_to_run(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text("")
    result = runner.invoke(app, ["run", "--config", str(cfg)])
    assert result.exit_code == 1 and "nothing to run" in result.output


@pytest.mark.model
def test_score_and_eval_with_the_shipped_model(tmp_path: Path) -> None:
    data, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    lines = [
        {
            "id": "a",
            "text": "you're so mature for your age. are your parents home? don't tell anyone, add me on snap",
            "label": 1,
        },
        {"id": "b", "text": "great match today everyone, see you at practice on thursday", "label": 0},
    ]
    data.write_text("\n".join(json.dumps(x) for x in lines) + "\nnot json\n")
    result = runner.invoke(app, ["score", "--input", str(data), "--output", str(out)])
    assert result.exit_code == 0, result.output
    scored = {r["id"]: r for r in map(json.loads, out.read_text().splitlines())}
    assert set(scored) == {"a", "b"}
    assert scored["a"]["score"] > scored["b"]["score"]
    assert {"secrecy", "off_platform"} <= set(scored["a"]["stages"]) and scored["b"]["stages"] == []
    report = runner.invoke(app, ["eval", "--input", str(data), "--json"])
    assert report.exit_code == 0, report.output
    body = json.loads(report.output[report.output.index("{") :])
    assert body["metrics"]["n"] == 2 and body["skipped"] == 1
    assert body["metrics"]["roc_auc"] == 1.0


# -- issue 12 item 6: data commands name their database and never create one silently -------------


@pytest.fixture
def bare_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty working directory with no GROOMGUARD_* variables."""
    for key in list(__import__("os").environ):
        if key.startswith("GROOMGUARD_"):
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.parametrize("args", [["forget", "someone"], ["cases", "list"], ["cases", "show", "1"]])
def test_data_commands_without_config_stop_and_create_nothing(bare_dir: Path, args: list[str]) -> None:
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert "no database chosen" in result.output and "--config" in result.output
    assert list(bare_dir.iterdir()) == [], "no database may be created"


def test_forget_on_a_missing_database_is_an_error_not_nothing_stored(bare_dir: Path) -> None:
    result = runner.invoke(app, ["forget", "someone", "--db", str(bare_dir / "typo.db")])
    assert result.exit_code == 1 and "does not exist" in result.output
    assert "nothing stored" not in result.output
    assert not (bare_dir / "typo.db").exists()


def test_forget_names_the_database_it_used(bare_dir: Path, ev: EventFactory) -> None:
    data, db = bare_dir / "e.jsonl", bare_dir / "real.db"
    write_events(data, ev)
    assert runner.invoke(app, ["replay", str(data), "--db", str(db), "--quiet"]).exit_code == 0
    erased = runner.invoke(app, ["forget", "g", "--db", str(db)])
    assert erased.exit_code == 0 and f"database: SQLite {db.resolve()} (from --db)" in erased.output
    assert f"erased g from SQLite {db.resolve()}" in erased.output
    again = runner.invoke(app, ["forget", "g", "--db", str(db)])
    assert f"nothing stored about g in SQLite {db.resolve()}" in again.output


def test_config_from_env_or_the_documented_default_is_used_and_printed(
    bare_dir: Path, ev: EventFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    data, db = bare_dir / "e.jsonl", bare_dir / "from-config.db"
    write_events(data, ev)
    config = bare_dir / "custom.toml"
    config.write_text(f'[store]\npath = "{db}"\n')
    monkeypatch.setenv("GROOMGUARD_CONFIG", str(config))
    assert runner.invoke(app, ["replay", str(data), "--quiet"]).exit_code == 0
    listed = runner.invoke(app, ["cases", "list"])
    assert listed.exit_code == 0 and f"(from GROOMGUARD_CONFIG {config})" in listed.output
    monkeypatch.delenv("GROOMGUARD_CONFIG")
    (bare_dir / "groomguard.toml").write_text(config.read_text())
    listed = runner.invoke(app, ["cases", "list"])
    assert listed.exit_code == 0 and "(from default groomguard.toml groomguard.toml)" in listed.output


def test_score_to_stdout_writes_no_file_named_dash(bare_dir: Path) -> None:
    data = bare_dir / "in.jsonl"
    data.write_text(json.dumps({"id": "a", "text": "add me on snap, dont tell ur parents"}) + "\n")
    result = runner.invoke(app, ["score", "--input", str(data), "--output", "-"])
    assert result.exit_code == 0, result.output
    assert not (bare_dir / "-").exists()
    assert json.loads(result.stdout.splitlines()[0])["id"] == "a"


def test_score_into_a_missing_folder_is_one_clear_line(tmp_path: Path) -> None:
    source = tmp_path / "in.jsonl"
    source.write_text(json.dumps({"id": 1, "text": "hello"}) + "\n", encoding="utf-8")
    result = runner.invoke(app, ["score", "--input", str(source), "--output", str(tmp_path / "nope" / "out.jsonl")])
    assert result.exit_code == 1
    assert "does not exist" in result.output and "Traceback" not in result.output


def test_eval_needs_exactly_one_source(tmp_path: Path) -> None:
    result = runner.invoke(app, ["eval"])
    assert result.exit_code == 2 and "--corpus" in result.output
    missing = runner.invoke(app, ["eval", "--corpus", str(tmp_path)])
    assert missing.exit_code == 1 and "pj_transcripts.jsonl" in missing.output
