"""Child notices in the child's language: templates for en/es/de/fr/nl written for a 10-year-old, per-community
locale and region, check-config errors for unknown values, and escalation notices for new serious stages."""

from __future__ import annotations

import re
import tomllib
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import ClassVar

import pytest
from groomguard.app.cli import app
from groomguard.app.runtime import build_engine
from groomguard.config import NOTICE_LOCALES, ConfigError, NoticeSettings, load_settings
from groomguard.detectors.base import DetectorState
from groomguard.engine import Engine
from groomguard.events import BaseEvent, MessageSent
from groomguard.findings import Finding
from groomguard.notices import NoticeBook, template_path
from groomguard.testing import EventFactory, MemorySink, make_settings
from typer.testing import CliRunner

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
#: Words no notice may contain in any language: no detection, suspicion or watching is ever mentioned.
FORBIDDEN = re.compile(
    r"groom|suspect|sospech|verdächt|verdacht|soupçon|flag|detect|detecta|erkannt|détect|moderat|watch|vigil|"
    r"beobacht|surveill|in de gaten|score|algorithm|GroomGuard",
    re.IGNORECASE,
)
#: Who to tell, in each language: every notice says it.
TELL = {
    "en": "adult you trust",
    "es": "adulto de confianza",
    "de": "Erwachsenen, dem du vertraust",
    "fr": "adulte de confiance",
    "nl": "volwassene die je vertrouwt",
}
BLOCK = {"en": "block", "es": "bloquear", "de": "blockieren", "fr": "bloquer", "nl": "blokkeren"}
MAX_WORDS = 16


def _templates(locale: str) -> dict[str, str]:
    return dict(tomllib.loads(template_path(locale).read_text(encoding="utf-8"))["templates"])


def _sentences(text: str) -> list[str]:
    out = []
    for line in text.splitlines():
        line = line.removeprefix("- ").split("{helpline_contact}")[0]
        out += [s for s in re.split(r"(?<=[.!?:])\s+", line) if s.strip()]
    return out


@pytest.mark.parametrize("locale", NOTICE_LOCALES)
def test_every_locale_has_every_notice_written_for_a_ten_year_old(locale: str) -> None:
    english, texts = _templates("en"), _templates(locale)
    assert set(texts) == set(english), "the same notices in every language"
    for key, text in texts.items():
        assert set(re.findall(r"{\w+}", text)) == {"{helpline_name}", "{helpline_contact}", "{helpline_url}"}, key
        long = [s for s in _sentences(text) if len(s.split()) > MAX_WORDS]
        assert not long, f"{locale}.{key}: sentences over {MAX_WORDS} words: {long}"
        assert TELL[locale] in text and BLOCK[locale] in text.lower(), f"{locale}.{key} says who to tell and to block"
        assert FORBIDDEN.search(text) is None, f"{locale}.{key}: {FORBIDDEN.search(text)}"
        assert 4 <= len(text.splitlines()) <= 6, "a few short lines, not an essay"


class _Stager:
    """Each message to a child is a finding that asks for a notice; the stages are the message's words."""

    name: ClassVar[str] = "stager"
    handles: ClassVar[tuple[type[BaseEvent], ...]] = (MessageSent,)
    enabled: ClassVar[bool] = True

    def forget(self, account: str, community: str | None = None) -> None:
        """It keeps nothing about accounts."""

    async def inspect(self, event: BaseEvent, state: DetectorState) -> Sequence[Finding]:
        if not isinstance(event, MessageSent) or not event.recipients:
            return ()
        return (
            Finding(
                detector="stager", platform=event.platform, community=event.community, suspect=event.author,
                score=0.5, reason="stages", at=event.at, event_key=event.key, child=event.recipients[0],
                notify_child=True, stages=tuple(event.text.split()),
            ),
        )  # fmt: skip


def _finding(stages: tuple[str, ...], minutes: int, suspect: str = "adult", community: str = "c1") -> Finding:
    return Finding(
        detector="grooming_language", platform="test", community=community, suspect=suspect, score=0.7,
        reason="r", at=T0 + timedelta(minutes=minutes), event_key=f"test:e{minutes}:{suspect}", child="kid",
        notify_child=True, stages=stages,
    )  # fmt: skip


def test_a_new_serious_stage_gets_one_more_notice_inside_the_window_then_the_daily_cap_holds() -> None:
    book = NoticeBook(NoticeSettings())
    first = book.notice_for(_finding(("secrecy",), 0), 1)
    assert first is not None and "keep a secret" in first.text
    assert book.notice_for(_finding(("secrecy", "gifts"), 10), 1) is None, "a milder new stage waits"
    photos = book.notice_for(_finding(("secrecy", "photos"), 20), 1)
    assert photos is not None and "photos or videos" in photos.text
    assert book.notice_for(_finding(("photos",), 30), 1) is None, "once per stage per window"
    meeting = book.notice_for(_finding(("photos", "meeting"), 40), 1)
    assert meeting is not None and "meeting up" in meeting.text
    # Three notices today: the hard cap (notices.max_per_child_per_day) holds even for another account.
    assert book.notice_for(_finding(("photos",), 50, suspect="other"), 2) is None
    assert book.suppressed == 3
    # A day later the window has passed: a first notice again.
    assert book.notice_for(_finding(("gifts",), 60 * 25), 1) is not None
    assert [row[4] for row in book.take_pending()] == ["secrecy", "photos", "meeting", "gifts"]


def test_locale_and_helpline_per_community() -> None:
    settings = NoticeSettings(
        region="gb",
        communities={"berlin": {"locale": "de", "region": "de"}, "lyon": {"locale": "fr", "region": "fr"}},  # type: ignore[dict-item]
        helplines={"NZ": {"name": "Youthline", "contact": "0800 376 633", "url": "https://www.youthline.co.nz"}},  # type: ignore[dict-item]
    )
    book = NoticeBook(settings)
    german = book.notice_for(_finding(("photos",), 0, community="berlin"), 1)
    assert german is not None and german.locale == "de"
    assert "Fotos oder Videos" in german.text and "Nummer gegen Kummer" in german.text and "116 111" in german.text
    french = book.notice_for(_finding(("meeting",), 0, community="lyon"), 1)
    assert french is not None and french.locale == "fr" and "119" in french.text and "rencontrer" in french.text
    english = book.notice_for(_finding((), 0, community="elsewhere"), 1)
    assert english is not None and english.locale == "en" and "Childline" in english.text
    assert NoticeSettings(region="nz", helplines=settings.helplines).helpline().name == "Youthline"


def test_unknown_region_or_locale_is_a_check_config_error_naming_the_allowed_values(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[notices]\nregion = "xx"\nlocale = "pt"\n\n[notices.communities.c1]\nlocale = "zz"\n')
    result = CliRunner().invoke(app, ["check-config", str(bad)])
    assert result.exit_code == 1
    assert "notices.region" in result.output and "unknown region 'xx'" in result.output
    assert "at, au, ca, ch, de, es, fr, gb, ie, nl, us" in result.output
    assert "notices.locale" in result.output and "allowed: en, es, de, fr, nl" in result.output
    assert "community c1: unknown locale 'zz'" in result.output
    # Before this, an unknown region fell back to UK Childline in English without a word.
    with pytest.raises(ConfigError):
        load_settings(bad)
    ok = tmp_path / "ok.toml"
    ok.write_text(
        '[notices]\nregion = "nz"\nlocale = "nl"\n[notices.helplines.nz]\nname = "Youthline"\ncontact = "0800 376 633"\n'
    )
    assert CliRunner().invoke(app, ["check-config", str(ok)]).exit_code == 0


async def test_escalation_limits_survive_a_restart(tmp_path: Path) -> None:
    """The stage each notice was about is stored with the batch: after a restart the photo notice that
    already went out is not sent again, and the meeting notice still can be."""
    db = tmp_path / "gg.db"
    ev = EventFactory(start=datetime.now(UTC) - timedelta(minutes=30))

    def engine() -> Engine:
        return build_engine(make_settings(db), [MemorySink()], detectors=[_Stager()])

    def say(words: str) -> MessageSent:
        return ev.message("adult", words, conversation="dm", recipients=("kid",), private=True)

    first = engine()
    await first.start()
    await first.ingest([ev.adult("adult"), ev.minor("kid"), say("secrecy")])
    await first.ingest([say("photos")])
    await first.stop()
    assert first.stats.notices == 2
    second = engine()
    await second.start()
    await second.ingest([say("photos")])
    assert second.stats.notices == 0, "the photo notice was sent before the restart"
    await second.ingest([say("meeting")])
    await second.stop()
    assert second.stats.notices == 1
    sent = [a for a in second.sinks[0].actions if getattr(a, "child", None) == "kid"]  # type: ignore[attr-defined]
    assert len(sent) == 1 and "meeting up" in sent[0].text
