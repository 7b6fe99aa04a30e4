"""Tests for grooming-stage tagging on hand-written synthetic lines (never corpus text)."""

from __future__ import annotations

from pathlib import Path

import pytest
from groomguard.stages import STAGES, StageError, StageTagger, default_tagger
from groomguard.text import fold

# One synthetic line per stage, plus the disguised forms the normaliser must unpick.
STAGE_EXAMPLES = [
    ("rapport", "you're so mature for your age"),
    ("rapport", "ur so pretty"),
    ("personal_info", "how old are u?"),
    ("personal_info", "are your parents home right now"),
    ("personal_info", "r u home alone"),
    ("personal_info", "what school do you go to"),
    ("secrecy", "don't tell anyone about us ok"),
    ("secrecy", "delete this chat after"),
    ("secrecy", "this is our little secret"),
    ("secrecy", "d0nt t3ll ur mom"),
    ("isolation", "your parents don't understand you like i do"),
    ("isolation", "i'm the only one who understands you"),
    ("gifts", "i can buy you robux"),
    ("gifts", "want a steam gift card?"),
    ("off_platform", "add me on snapchat"),
    ("off_platform", "add me on s n a p"),
    ("off_platform", "whats ur number"),
    ("off_platform", "text me 07700 900 123"),
    ("off_platform", "dm me"),
    ("photos", "send me a pic"),
    ("photos", "send me a p1c"),
    ("photos", "turn on your cam"),
    ("sexual", "are you a virgin"),
    ("sexual", "what are you wearing"),
    ("meeting", "we should meet up this weekend"),
    ("meeting", "i can pick you up after school"),
    ("meeting", "sneak out tonight"),
    # Paraphrases without the stock phrases (issue 11): secrecy about a specific thing, isolation,
    # camera requests, gifts as a lever, and their folded/disguised forms.
    ("secrecy", "don't mention it to your mum"),
    ("secrecy", "this stays with us, ok?"),
    ("secrecy", "your parents wouldn't get it"),
    ("secrecy", "d.o.n.t t.e.l.l ur mom"),
    ("isolation", "i'm the only one you can trust"),
    ("isolation", "your friends don't deserve you"),
    ("isolation", "your parents treat you like a baby"),
    ("photos", "turn your camera on"),
    ("photos", "a p*i*c of you"),
    ("photos", "53nd m3 a pic"),
    ("gifts", "i'll buy you that hoodie"),
    ("gifts", "i'll get you the battle pass if you do something for me"),
    ("off_platform", "hop on the other app where it's just us"),
    ("personal_info", "what year are you in?"),
    ("personal_info", "is anyone else in the house right now?"),
    ("meeting", "we could hang out just the two of us, i can drive"),
]


@pytest.mark.parametrize(("stage", "text"), STAGE_EXAMPLES)
def test_each_stage_is_found(stage: str, text: str) -> None:
    assert stage in default_tagger().stages(text)


@pytest.mark.parametrize(
    "text",
    [
        "great game today, see you at practice on thursday",
        "homework is on page 42",
        "the bus leaves the school car park at 8",
        "gg that was a close one",
        "what's the weather like",
        "ok",
        "lol",
        "see you at practice, bring your kit",
        "join vc for the raid",
        "",
        "😀😀",
    ],
)
def test_benign_lines_show_no_escalation(text: str) -> None:
    tagger = default_tagger()
    assert not tagger.escalation & set(tagger.stages(text))


def test_gifts_count_as_escalation() -> None:
    assert "gifts" in default_tagger().escalation


def test_matches_carry_spans_into_normalised_text() -> None:
    folded = fold("hey!! DON'T tell anyone and add me on snap")
    matches = default_tagger().tag(folded)
    by_stage = {m.stage: m for m in matches}
    assert set(by_stage) >= {"secrecy", "off_platform"}
    for m in matches:
        assert folded.text[m.start : m.end] == m.span


def test_progression_in_stage_order() -> None:
    text = "how old are you? don't tell your mom. add me on kik"
    assert default_tagger().stages(text) == ("personal_info", "secrecy", "off_platform")


def test_every_stage_defined_with_weights() -> None:
    tagger = default_tagger()
    assert tuple(d.name for d in tagger.definitions) == STAGES
    assert all(0 <= d.weight <= 1 for d in tagger.definitions)


@pytest.mark.parametrize("raw", ["a" * 2_000_000, "\x00\x01\x02" * 1000, "你好吗", "🙂" * 500])
def test_bad_input_never_crashes(raw: str) -> None:
    assert isinstance(default_tagger().tag(raw), list)


def test_missing_stage_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "stages.toml"
    path.write_text('[stages.rapport]\npatterns = ["hi"]\n', encoding="utf-8")
    with pytest.raises(StageError, match="lacks stages"):
        StageTagger.from_file(path)


def test_bad_pattern_is_a_clear_error(tmp_path: Path) -> None:
    body = "".join(f'[stages.{s}]\npatterns = ["ok"]\n' for s in STAGES)
    path = tmp_path / "stages.toml"
    path.write_text(body.replace('["ok"]', '["(unclosed"]', 1), encoding="utf-8")
    with pytest.raises(StageError, match="rapport"):
        StageTagger.from_file(path)


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(StageError, match="cannot read"):
        StageTagger.from_file(tmp_path / "nope.toml")
