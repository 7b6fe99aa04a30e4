"""Speed of the grooming-language model: batched messages/s, single-message latency and RSS."""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

# Run as `python bench/language.py` from the repo root as well as `python -m bench.language`.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from groomguard.classifier import DEFAULT_MODEL_PATH, OnnxClassifier
from groomguard.text import fold_text

from bench.memory_use import current_rss_mb, peak_rss_mb

# Synthetic chat lines written for the benchmark (no corpus text): typical lengths and styles.
LINES = (
    "hey how r u",
    "lol same",
    "what are you doing this weekend?",
    "gg that was a close one, wanna play another match",
    "did you finish the maths homework? page 42 is really hard",
    "can you send me the slides from class today please",
    "ok cool see you tomorrow",
    "my mum says i can come to the party if someone drives me home",
    "haha that video was so funny, i watched it like ten times",
    "the bus leaves at 8 from the school car park, don't be late",
    "i'm so tired, we had practice for three hours",
    "whats ur favourite song right now",
)


def measure(name: str, classify: Callable[[Sequence[str]], object], batch: int, seconds: float) -> dict[str, float]:
    """Throughput over batches of `batch` lines, then single-line latency percentiles."""
    texts = [LINES[i % len(LINES)] for i in range(batch)]
    classify(texts)  # warm up
    done = 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        classify(texts)
        done += len(texts)
    throughput = done / (time.perf_counter() - start)
    latencies = []
    for i in range(2000):
        t0 = time.perf_counter()
        classify([LINES[i % len(LINES)]])
        latencies.append((time.perf_counter() - t0) * 1000)
    latencies.sort()
    result = {
        "messages_per_s": round(throughput, 1),
        "p50_ms": round(statistics.median(latencies), 4),
        "p99_ms": round(latencies[int(len(latencies) * 0.99) - 1], 4),
    }
    print(
        f"{name:<28} {result['messages_per_s']:>10,.0f} msg/s  p50 {result['p50_ms']:.3f} ms"
        f"  p99 {result['p99_ms']:.3f} ms",
        flush=True,
    )
    return result


#: Synthetic risky lines (written for the benchmark): windows of these cross the second-opinion floor.
RISKY = (
    "are you home alone right now",
    "dont tell your mum we talk ok",
    "send me a pic of you",
    "add me on snap its more private",
    "how old are you, what school do you go to",
)


def english_path(classifier: OnnxClassifier, risky: bool = False) -> Callable[[Sequence[str]], object]:
    """What the detector does per adult→minor message: fold, language id, stage tags, score a 10-message
    window, and (for windows scored >= 0.3) ask the embedding model for a second opinion."""
    from groomguard.evidence import ConversationEvidence, EvidenceSettings, with_second_opinion
    from groomguard.language_routing import default_router
    from groomguard.stages import default_tagger
    from groomguard.text import fold, model_text

    router = default_router()
    second = router.second_opinion()
    tagger = default_tagger()
    settings = EvidenceSettings(window=10)
    evidence = ConversationEvidence()
    counter = iter(range(10**9))

    def run(texts: Sequence[str]) -> object:
        windows, raws = [], []
        for text in texts:
            if risky:  # a fresh risky line each time, so the embedding cache cannot answer for it
                text = f"{RISKY[next(counter) % len(RISKY)]} {next(counter)}"
            router.language(text)
            folded = fold(text)
            tagger.tag(folded)
            mt = model_text(folded.text)
            window = evidence.add(mt, classifier.informative(mt), (), settings, line=text)
            if window is not None:
                windows.append(window)
                raws.append(evidence.raw_window())
        scores = classifier.classify_folded(windows)
        if second is not None:
            scores = with_second_opinion(scores, raws, second.classify)
        return scores

    return run


def main(argv: Sequence[str] | None = None) -> int:
    """Bench the shipped English model, the whole English per-message path and the multilingual path."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL_PATH)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args(argv)

    print(
        f"machine: {platform.platform()} | {platform.processor() or platform.machine()} | "
        f"cpu_count={os.cpu_count()} | python {platform.python_version()}"
    )
    print("onnxruntime: intra_op=1 inter_op=1 (one core)")
    before = current_rss_mb()
    classifier = OnnxClassifier(args.model)
    loaded = current_rss_mb()
    print(
        f"model {args.model.name}: {args.model.stat().st_size / 1e6:.1f} MB on disk, "
        f"+{loaded - before:.1f} MB RSS to load"
    )
    line = LINES[4]
    n = 5000
    t0 = time.perf_counter()
    for _ in range(n):
        fold_text(line)
    print(f"normalise one line: {(time.perf_counter() - t0) / n * 1e6:.1f} µs")
    results: dict[str, object] = {}
    results["english_model"] = measure("english model, one message", classifier.classify, args.batch, args.seconds)
    results["english_path"] = measure("english path, 10-msg window", english_path(classifier), args.batch, args.seconds)
    results["english_path_risky"] = measure(
        "english path, risky (2nd opinion)", english_path(classifier, risky=True), 64, args.seconds
    )
    results["rss_english_mb"] = round(current_rss_mb(), 1)
    try:
        from groomguard.multilingual import load_multilingual_scorer

        scorer = load_multilingual_scorer()
        foreign = (
            "hola, ¿qué tal el entrenamiento de hoy?",
            "wie alt bist du eigentlich?",
            "tu veux qu'on parle sur une autre appli ?",
            "stuur je me een foto van jezelf?",
        )

        counter = iter(range(10**9))

        def multilingual(texts: Sequence[str]) -> object:
            # A fresh line each time: the encoder caches line embeddings, and a benchmark of cache hits
            # would say nothing about a new message.
            return scorer.classify([f"{foreign[i % len(foreign)]} {next(counter)}" for i in range(len(texts))])

        results["multilingual_path"] = measure("multilingual (es/de/fr/nl)", multilingual, 64, args.seconds)
    except Exception as exc:  # the optional encoder may be missing: say so, measure the rest
        print(f"multilingual scorer not measured: {exc}")
    results["rss_all_models_mb"] = round(current_rss_mb(), 1)
    results["peak_rss_mb"] = round(peak_rss_mb(), 1)
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
