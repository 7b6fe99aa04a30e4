"""Speed and memory of the language path: language ID per message, the multilingual scorer, peak RSS with all models.

Prints the machine, then for language identification and for the multilingual scorer: messages/s
(batched, and one at a time the way the detector calls them) and single-message p50/p99; then RSS
with the language-ID model, the multilingual scorer and the English ONNX model loaded together
(budget: 400 MB). The last line is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

# Run as `python bench/multilingual.py` from the repo root as well as `python -m bench.multilingual`.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.memory_use import current_rss_mb, peak_rss_mb

# Chat lines written for the benchmark (no corpus text), mixed languages and lengths as a
# multilingual community would send them.
LINES = (
    "hey how r u",
    "lol same",
    "gg that was a close one, wanna play another match",
    "did you finish the maths homework? page 42 is really hard",
    "ok",
    "hola que tal, vienes al entreno el sabado?",
    "jajaja no puede ser",
    "mañana tenemos examen de mates y no he estudiado nada",
    "hallo, kommst du morgen zum training?",
    "haha ja genau",
    "ich muss noch hausaufgaben machen, schreib später",
    "salut tu viens au match samedi ?",
    "mdr trop bien",
    "j'ai pas fini mes devoirs, on se parle ce soir",
    "hoi, kom je zaterdag naar de training?",
    "haha ja echt",
    "ik moet nog huiswerk maken, ik app je straks",
    "مرحبا كيف حالك",
    "привет, как дела?",
    "😀👍",
)
FOREIGN_WINDOWS = {
    "es": ["hola que tal", "vienes al entreno el sabado?", "mi madre me lleva", "vale nos vemos alli"],
    "de": ["hallo wie gehts", "kommst du samstag zum training?", "meine mutter fährt mich", "ok bis dann"],
    "fr": ["salut ça va", "tu viens à l'entraînement samedi ?", "ma mère m'emmène", "ok à samedi"],
    "nl": ["hoi hoe gaat het", "kom je zaterdag naar de training?", "mijn moeder brengt me", "oke tot dan"],
}


def machine() -> str:
    """One line naming the machine the figures come from."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            cpu = next((ln.split(":", 1)[1].strip() for ln in handle if ln.startswith("model name")), cpu)
    except OSError:
        pass
    return f"machine: {platform.platform()} | {cpu} | cpu_count={os.cpu_count()} | python {platform.python_version()}"


def latencies(fn: Callable[[int], Any], n: int) -> dict[str, float]:
    """Call fn(i) n times; p50/p99/max in milliseconds and the resulting calls per second."""
    times = []
    start = time.perf_counter()
    for i in range(n):
        t0 = time.perf_counter()
        fn(i)
        times.append((time.perf_counter() - t0) * 1000)
    total = time.perf_counter() - start
    times.sort()
    return {
        "per_s": round(n / total, 1),
        "p50_ms": round(statistics.median(times), 3),
        "p99_ms": round(times[min(n - 1, int(n * 0.99))], 3),
        "max_ms": round(times[-1], 3),
    }


def main(argv: list[str] | None = None) -> int:
    """Measure and print; exit 1 if the models together exceed the RSS budget."""
    parser = argparse.ArgumentParser(prog="bench/multilingual.py", description=__doc__)
    parser.add_argument("--messages", type=int, default=20_000, help="messages for the language-ID run")
    parser.add_argument("--windows", type=int, default=600, help="windows for the multilingual scorer runs")
    parser.add_argument("--budget-mb", type=float, default=400.0, help="RSS budget for all models loaded")
    parser.add_argument("--no-english", action="store_true", help="do not load the English ONNX model")
    args = parser.parse_args(argv)
    print(machine())
    out: dict[str, Any] = {"baseline_rss_mb": round(current_rss_mb(), 1)}

    from groomguard.langid import detect_language, language_identifier

    t0 = time.perf_counter()
    language_identifier()
    out["langid_load_s"] = round(time.perf_counter() - t0, 3)
    out["rss_after_langid_mb"] = round(current_rss_mb(), 1)
    texts = [LINES[i % len(LINES)] + ("" if i < len(LINES) else f" {i % 97}") for i in range(args.messages)]
    lid = latencies(lambda i: detect_language(texts[i]), args.messages)
    out["langid"] = lid
    print(
        f"langid (fastText lid.176.ftz + script rules): {lid['per_s']:,.0f} messages/s on one thread, "
        f"p50 {lid['p50_ms']} ms, p99 {lid['p99_ms']} ms (load {out['langid_load_s']} s)"
    )

    from groomguard.langid import ConversationLanguage

    tracker = ConversationLanguage()
    conv_lid = latencies(lambda i: tracker.add(texts[i]), min(args.messages, 5000))
    out["conversation_langid"] = conv_lid
    print(
        f"conversation language (last 10 lines re-read per message): {conv_lid['per_s']:,.0f} messages/s, "
        f"p99 {conv_lid['p99_ms']} ms"
    )

    from groomguard.multilingual import load_multilingual_scorer

    t0 = time.perf_counter()
    scorer = load_multilingual_scorer()
    scorer.classify(["warm up"])
    out["multilingual_load_s"] = round(time.perf_counter() - t0, 3)
    out["rss_after_multilingual_mb"] = round(current_rss_mb(), 1)

    # One at a time, the detector's pattern: each new message slides the window by one line, so
    # only the new line is embedded (the rest come from the scorer's line cache).
    conversation: list[str] = []
    langs = sorted(FOREIGN_WINDOWS)

    def slide(i: int) -> None:
        base = FOREIGN_WINDOWS[langs[i % len(langs)]]
        conversation.append(f"{base[i % len(base)]} {i}")
        window = conversation[-10:]
        scorer.classify(["\n".join(window)])

    live = latencies(slide, args.windows)
    out["multilingual_single_message"] = live
    # Cold: every window's lines are new (worst case, e.g. after a restart).
    cold = latencies(
        lambda i: scorer.classify(["\n".join(f"{x} {i}-{k}" for k, x in enumerate(FOREIGN_WINDOWS["es"] * 2))]),
        max(50, args.windows // 10),
    )
    out["multilingual_cold_10_line_window"] = cold
    batch_windows = ["\n".join(f"{x} b{i}" for x in FOREIGN_WINDOWS[langs[i % 4]]) for i in range(args.windows)]
    t0 = time.perf_counter()
    scorer.classify(batch_windows)
    batched = args.windows / (time.perf_counter() - t0)
    out["multilingual_batched_new_windows_per_s"] = round(batched, 1)
    print(
        f"multilingual (USE-m3 + head, one BLAS thread): one message at a time {live['per_s']:,.0f} messages/s, "
        f"p50 {live['p50_ms']} ms, p99 {live['p99_ms']} ms; cold 10-line window p99 {cold['p99_ms']} ms; "
        f"batched new 4-line windows {batched:,.0f}/s (load {out['multilingual_load_s']} s)"
    )
    tagger = scorer.tagger("es")
    tags = latencies(lambda i: tagger.stages(f"{FOREIGN_WINDOWS['es'][i % 4]} {i}"), 300)
    out["stage_tags_single_message"] = tags
    print(f"stage tags (lexicon + example index) per message: p50 {tags['p50_ms']} ms, p99 {tags['p99_ms']} ms")

    if not args.no_english:
        from groomguard.classifier import load_default_classifier

        english = load_default_classifier()
        english.classify(["warm up", "hey how r u"])
        out["rss_after_english_mb"] = round(current_rss_mb(), 1)
    out["peak_rss_mb"] = round(peak_rss_mb(), 1)
    out["current_rss_mb"] = round(current_rss_mb(), 1)
    verdict = "within" if out["peak_rss_mb"] <= args.budget_mb else "OVER"
    print(
        f"RSS: baseline {out['baseline_rss_mb']} MB, +langid {out['rss_after_langid_mb']} MB, "
        f"+multilingual {out['rss_after_multilingual_mb']} MB"
        + ("" if args.no_english else f", +English model {out['rss_after_english_mb']} MB")
        + f"; peak {out['peak_rss_mb']} MB ({verdict} the {args.budget_mb:.0f} MB budget)"
    )
    print(json.dumps(out))
    return 0 if verdict == "within" else 1


if __name__ == "__main__":
    sys.exit(main())
