"""The moderator workspace on the command line: one risk number on the demo's cards, in `cases list` and
`cases show`; evidence in plain words; `--json`; `cases decide` with the effects of a button; `--quiet`."""

from __future__ import annotations

import json
import re
import sqlite3
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

from groomguard.app.cli import app
from groomguard.events import Decision, ModeratorDecision, dump_event
from groomguard.testing import EventFactory
from typer.testing import CliRunner

runner = CliRunner()
CARD_TITLE = re.compile(r"case #(\d+) · \S+ · risk now (\d\.\d\d) \([a-z ]+\) · peak (\d\.\d\d)")


def _fan_out(path: Path, ev: EventFactory, suspect: str = "g", kids: int = 10, extra: list[str] = ()) -> None:  # type: ignore[assignment]
    lines = [dump_event(ev.adult(suspect))]
    for i in range(kids):
        lines += [dump_event(ev.minor(f"{suspect}-k{i}")), dump_event(ev.contact(suspect, f"{suspect}-k{i}"))]
    path.write_text("\n".join([*lines, *extra]) + "\n")


def test_the_demo_cards_cases_list_and_cases_show_print_the_same_risk_now_and_peak(tmp_path: Path) -> None:
    db = tmp_path / "demo.db"
    demo = runner.invoke(app, ["demo", "--db", str(db)])
    assert demo.exit_code == 0, demo.output
    printed = {int(a): (float(b), float(c)) for a, b, c in CARD_TITLE.findall(demo.output)}
    assert len(printed) >= 3, demo.output
    # The demo prints each case's final card once (not only its first version) ...
    assert [a for a, _, _ in CARD_TITLE.findall(demo.output)].count("1") == 1
    # ... in plain words: no detector names, no raw evidence ids, a line saying what the risk means.
    assert " INFO " not in demo.output
    assert "grooming_language" not in demo.output and "message:m-" not in demo.output
    assert "account:" not in demo.output and "Risk is how strongly" in demo.output
    assert re.search(r"\d\d [A-Z][a-z]{2} \d\d:\d\d UTC · minor\d{4} · ", demo.output), "evidence: when · child · what"

    listed = json.loads(runner.invoke(app, ["cases", "list", "--db", str(db), "--json"]).stdout)
    assert [r["risk_now"] for r in listed] == sorted((r["risk_now"] for r in listed), reverse=True)
    for row in listed:
        card_risk, card_peak = printed[row["id"]]
        assert (round(row["risk_now"], 2), round(row["peak"], 2)) == (card_risk, card_peak)
        shown = json.loads(runner.invoke(app, ["cases", "show", str(row["id"]), "--db", str(db), "--json"]).stdout)
        assert (shown["risk_now"], shown["peak"]) == (row["risk_now"], row["peak"])
        assert shown["peak"] >= shown["risk_now"] and shown["risk_note"].startswith("Risk is how strongly")
        assert all(e["at"] for e in shown["evidence"])
        text = runner.invoke(app, ["cases", "show", str(row["id"]), "--db", str(db)]).stdout
        assert f"risk now {card_risk:.2f}" in text and f"peak {card_peak:.2f}" in text
    language = next(r for r in listed if "Grooming language towards a child" in r["signals"])
    shown = json.loads(runner.invoke(app, ["cases", "show", str(language["id"]), "--db", str(db), "--json"]).stdout)
    excerpts = [e for e in shown["evidence"] if e["kind"] == "message"]
    # Minimal excerpts: the matched phrase only (at most excerpt_chars), named in plain words, with the child.
    assert excerpts and all(e["child"] and "“" in e["what"] for e in excerpts)
    assert all(len(e["what"].split("“", 1)[1]) <= 61 for e in excerpts)


def test_cases_decide_has_the_same_effects_as_a_button(tmp_path: Path) -> None:
    ev = EventFactory()
    data = tmp_path / "e.jsonl"
    _fan_out(data, ev)
    cli_db, button_db = tmp_path / "cli.db", tmp_path / "button.db"
    assert runner.invoke(app, ["replay", str(data), "--db", str(cli_db), "--quiet"]).exit_code == 0
    # The same decision arriving as a platform's moderator_decision event (what a button produces).
    button = tmp_path / "button.jsonl"
    press = ModeratorDecision(
        event_id="button-press-1", platform=ev.platform, community=ev.community, at=ev.now + timedelta(minutes=5),
        moderator="mod", case_id=1, decision=Decision.DISMISS, note="her uncle; the family confirmed",
    )  # fmt: skip
    _fan_out(button, EventFactory(), extra=[dump_event(press)])
    assert runner.invoke(app, ["replay", str(button), "--db", str(button_db), "--quiet"]).exit_code == 0

    result = runner.invoke(
        app,
        [
            "cases",
            "decide",
            "1",
            "dismiss",
            "--by",
            "alice",
            "--note",
            "her uncle; the family confirmed",
            "--db",
            str(cli_db),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "case #1: dismiss by alice (status open → dismissed)" in result.stdout

    def state(db: Path) -> tuple[object, ...]:
        con = sqlite3.connect(db)
        case = con.execute("SELECT status, dismissals, alert_version FROM cases WHERE id = 1").fetchone()
        audit = con.execute("SELECT action FROM audit WHERE case_id = 1 AND action = 'dismiss'").fetchall()
        card = con.execute(
            "SELECT payload FROM actions WHERE kind = 'mod_alert' AND case_id = 1 ORDER BY created_at DESC, id DESC"
        ).fetchone()
        con.close()
        return case, len(audit), json.loads(card[0])["status"]

    assert state(cli_db) == state(button_db) == (("dismissed", 1, state(cli_db)[0][2]), 1, "dismissed")  # type: ignore[index]
    # The card edit waits in the outbox for the bot that owns the card; this process delivered nothing.
    con = sqlite3.connect(cli_db)
    pending = con.execute("SELECT payload FROM actions WHERE delivered_at IS NULL AND kind = 'mod_alert'").fetchall()
    con.close()
    assert any(json.loads(p[0])["status"] == "dismissed" for p in pending)
    shown = json.loads(runner.invoke(app, ["cases", "show", "1", "--db", str(cli_db), "--json"]).stdout)
    [entry] = [h for h in shown["history"] if h["action"] == "dismiss"]
    assert entry["by"] == "cli:alice" and entry["note"] == "her uncle; the family confirmed"
    text = runner.invoke(app, ["cases", "show", "1", "--db", str(cli_db)]).stdout
    assert "cli:alice dismiss — note: her uncle; the family confirmed" in text

    # A closed case, an unknown decision, a missing moderator name: refused, nothing changes.
    again = runner.invoke(app, ["cases", "decide", "1", "confirm", "--by", "bob", "--db", str(cli_db)])
    assert again.exit_code == 1 and "case #1 is already dismissed" in again.output
    assert runner.invoke(app, ["cases", "decide", "1", "ban", "--by", "bob", "--db", str(cli_db)]).exit_code == 2
    assert runner.invoke(app, ["cases", "decide", "1", "confirm", "--db", str(cli_db)]).exit_code == 2
    missing = runner.invoke(app, ["cases", "decide", "7", "escalate", "--by", "bob", "--db", str(cli_db)])
    assert missing.exit_code == 1 and "there is no case #7" in missing.output


def test_cases_list_json_is_sorted_by_risk_now(tmp_path: Path) -> None:
    ev = EventFactory()
    data = tmp_path / "e.jsonl"
    lines = []
    for suspect, kids in (("few", 7), ("many", 14)):
        lines.append(dump_event(ev.adult(suspect)))
        for i in range(kids):
            lines += [dump_event(ev.minor(f"{suspect}-k{i}")), dump_event(ev.contact(suspect, f"{suspect}-k{i}"))]
    data.write_text("\n".join(lines) + "\n")
    db = tmp_path / "x.db"
    assert runner.invoke(app, ["replay", str(data), "--db", str(db), "--quiet"]).exit_code == 0
    rows = json.loads(runner.invoke(app, ["cases", "list", "--db", str(db), "--json"]).stdout)
    assert [r["suspect"] for r in rows] == ["many", "few"]
    assert set(rows[0]) >= {"id", "risk_now", "peak", "band", "recommended", "status", "as_of", "signals"}
    assert rows[0]["signals"][0] == "Contacting many children"
    assert (
        json.loads(runner.invoke(app, ["cases", "list", "--db", str(db), "--json", "--status", "banned"]).stdout) == []
    )


def test_quiet_replay_prints_no_info_logs(tmp_path: Path) -> None:
    data, db = tmp_path / "e.jsonl", tmp_path / "x.db"
    _fan_out(data, EventFactory())
    loud = subprocess.run(
        [sys.executable, "-m", "groomguard", "replay", str(data), "--db", str(db)], capture_output=True, text=True
    )
    assert loud.returncode == 0 and " INFO " in loud.stderr, "without --quiet the INFO logs are there"
    quiet = subprocess.run(
        [sys.executable, "-m", "groomguard", "replay", str(data), "--db", str(tmp_path / "y.db"), "--quiet"],
        capture_output=True,
        text=True,
    )
    assert quiet.returncode == 0, quiet.stderr
    assert " INFO " not in quiet.stderr and " INFO " not in quiet.stdout
    assert "GroomGuard summary" in quiet.stdout and "case #1" not in quiet.stdout
