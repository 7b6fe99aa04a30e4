"""Tests for groomguard.text: folding tricks, typed contact tokens, and bad input that must not crash."""

from __future__ import annotations

import time

import pytest
from groomguard.text import DEFAULT_MAX_CHARS, content_words, fold, fold_text, model_text


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Add me on S N A P", "add me on snap"),
        ("s.n.a.p me", "snap me"),
        ("k i k me", "kik me"),
        ("ѕеnd me a p1c", "send me a pic"),  # Cyrillic lookalikes + leetspeak
        ("d\u200bo\u200bn\u200bt tell", "dont tell"),  # zero-width spaces
        ("n00dz pls", "noodz pls"),
        ("h0me al0ne?", "home alone?"),
        ("Ｓｎａｐ", "snap"),  # full-width letters (NFKC)
        ("s̶e̶x", "sex"),  # combining strike-through marks
        ("don’t tell", "don't tell"),  # curly apostrophe
        ("gr8 c u l8r m8", "grate c u later mate"),
        ("$nap me", "snap me"),
        ("  lots   of\tspace\n", "lots of space"),
        # One separator per spaced run: words stay apart, a lone letter before a run stays.
        ("d.o.n.t t.e.l.l", "dont tell"),
        ("d-o-n-t t e l l", "dont tell"),
        ("a p*i*c", "a pic"),
        # Leetspeak that only looked like an ordinal or a model number.
        ("53nd m3 a pic", "send me a pic"),
    ],
)
def test_folds_common_evasions(raw: str, expected: str) -> None:
    assert fold_text(raw) == expected


@pytest.mark.parametrize(
    "raw",
    ["im 13", "i am 14yo", "meet at 5pm", "u r a cutie", "me 2", "2nd place", "user kid99", "13th 3rd 21st", "ps5 mp3"],
)
def test_keeps_numbers_and_ordinary_chat(raw: str) -> None:
    # Ages and times must survive: stage tagging reads "im 13" as a child's stated age.
    assert fold_text(raw) == raw.lower()


def test_real_cyrillic_words_stay_readable() -> None:
    assert fold_text("Привет") == "привет"


def test_contacts_become_typed_tokens() -> None:
    result = fold("text me 07700 900 123 or mail a.b@example.com, see www.example.com @kid_99")
    assert result.text == "text me _phone_ or mail _email_ , see _url_ _handle_"
    kinds = sorted(t.kind for t in result.tokens)
    assert kinds == ["email", "handle", "phone", "url"]
    assert any(t.value == "07700 900 123" for t in result.tokens)


def test_spaced_out_phone_number() -> None:
    assert fold_text("0 7 7 0 0 9 0 0 1 2 3") == "_phone_"


@pytest.mark.parametrize("raw", ["", "   ", "😀😀🎉", "\u200b\u200b"])
def test_empty_and_emoji_only(raw: str) -> None:
    result = fold(raw)
    assert not result.binary
    assert result.text == raw.strip().replace("\u200b", "")


def test_non_english_passes_through() -> None:
    assert fold_text("¿Dónde estás? 你好 مرحبا") == "¿donde estas? 你好 مرحبا"


def test_megabyte_input_is_truncated_quickly() -> None:
    start = time.perf_counter()
    result = fold("a " * 1_000_000)
    assert time.perf_counter() - start < 0.5
    assert result.truncated
    assert len(result.text) <= DEFAULT_MAX_CHARS


def test_binary_input_is_flagged_not_scored() -> None:
    result = fold(bytes(range(256)) * 4000)
    assert result.binary
    assert result.empty
    assert fold(b"\xff\xfe\x00\x00" * 100).binary


def test_bytes_that_are_utf8_are_decoded() -> None:
    assert fold_text(b"Add me on SNAP") == "add me on snap"


def test_lone_surrogates_do_not_crash() -> None:
    assert isinstance(fold_text("bad \ud800 surrogate"), str)


def test_typical_line_is_fast() -> None:
    line = "hey sweetie how was school today? are your parents home right now lol"
    fold(line)
    n = 2000
    start = time.perf_counter()
    for _ in range(n):
        fold(line)
    per_call_us = (time.perf_counter() - start) / n * 1e6
    assert per_call_us < 200  # ~20 µs on the dev machine; loose bound for slow CI


@pytest.mark.parametrize(
    ("raw", "informative"),
    [
        ("ok", False),
        ("k", False),
        ("lol ok cool haha", False),
        ("👍😂", False),
        ("مرحبا", False),
        ("you?", False),
        ("are you home alone", True),
        ("send me a pic lol", True),
    ],
)
def test_content_words_mark_what_can_carry_evidence(raw: str, informative: bool) -> None:
    assert bool(content_words(fold_text(raw))) is informative


def test_model_text_keeps_only_content_words() -> None:
    assert model_text(fold_text("OK lol don't tell your mum, haha... :P")) == "tell mum"
    assert model_text(fold_text("im 13, u?")) == "13"
    assert model_text(fold_text("#secret")) == "secret"  # "#" collides with onnxruntime's padding


def test_one_name_per_meaning_adapters_strip_markup_and_the_core_folds() -> None:
    """The core folds (`groomguard.text.fold`), adapters strip their markup (`strip_markup`): no "normalise"."""
    import ast
    from pathlib import Path

    import groomguard.text
    from groomguard.adapters.discord.translate import strip_markup as discord_strip
    from groomguard.adapters.matrix.translate import strip_markup as matrix_strip

    root = Path(__file__).resolve().parents[1]
    defined = [
        f"{path.relative_to(root)}:{node.name}"
        for folder in ("bot", "adapters")
        for path in (root / folder).rglob("*.py")
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
        and ("normaliz" in node.name.lower() or "normalis" in node.name.lower())
    ]
    assert defined == []
    assert not [name for name in dir(groomguard.text) if name.lower().startswith("normali")]
    assert discord_strip("**s**nap <@123456789012345678>") == "snap"
    assert matrix_strip("> <@a:b> hi\n\nok\u200d", True) == "ok"
    assert fold_text(discord_strip("**S**NAP")) == "snap"
