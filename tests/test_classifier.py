"""Tests for the classifier protocol, the fake, clear model errors, and (marked) the real ONNX model."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from groomguard.classifier import (
    DEFAULT_METADATA_PATH,
    DEFAULT_MODEL_PATH,
    FakeClassifier,
    ModelError,
    OnnxClassifier,
    TextClassifier,
)
from groomguard.text import FOLD_VERSION

# Hand-written synthetic lines (never corpus text).
GROOMING_WINDOWS = [
    "how old are u\nare ur parents home\nu seem so mature for ur age\ndont tell anyone we talk ok"
    "\nadd me on snap\nsend me a pic",
    "r u home alone\nwhat r u wearing\nur so sexy for 13\nkeep this our little secret\ndelete this chat",
    "i can pick u up after school\nur mom wont know\nwe can meet at the park\nbring ur cam",
]
BENIGN_WINDOWS = [
    "great game today team\npractice is thursday at 5\nparents please pick up by 6:30\nbring water",
    "hi class, homework is on page 42\nthe spelling test is on thursday\nbring your pe kit",
    "gg that was close\nwanna play another match\nwe need a healer can you switch",
    "what did you think of the film?\ni loved the ending\nthe music was great too",
]


def test_fake_is_deterministic_and_protocol_conformant() -> None:
    fake = FakeClassifier(scores={"exact": 0.9})
    assert isinstance(fake, TextClassifier)
    texts = ["exact", "hello", "keep it a secret and add me on snap", ""]
    first = fake.classify(texts)
    assert first == fake.classify(texts)
    assert first[0] == 0.9
    assert first[1] == pytest.approx(0.05)
    assert first[2] > 0.5
    assert all(0.0 <= s <= 1.0 for s in first)
    assert fake.calls[0] == texts


def test_missing_model_names_path_and_rebuild(tmp_path: Path) -> None:
    path = tmp_path / "grooming.onnx"
    with pytest.raises(ModelError) as info:
        OnnxClassifier(path)
    message = str(info.value)
    assert str(path) in message
    assert "make model" in message and "python -m groomguard.models.train" in message


def test_corrupt_model_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "grooming.onnx"
    path.write_bytes(b"this is not an onnx graph")
    meta = {"version": "x", "threshold": 0.5, "normalization": {"version": FOLD_VERSION}}
    (tmp_path / "grooming.json").write_text(json.dumps(meta), encoding="utf-8")
    (tmp_path / "grooming.vocab").write_text("secret\nsnap\n", encoding="utf-8")
    with pytest.raises(ModelError, match="cannot be loaded") as info:
        OnnxClassifier(path)
    assert str(path) in str(info.value)


def test_missing_vocabulary_is_a_clear_error(tmp_path: Path) -> None:
    if not DEFAULT_MODEL_PATH.is_file():
        pytest.skip("shipped model not built")
    path = tmp_path / "grooming.onnx"
    shutil.copy(DEFAULT_MODEL_PATH, path)
    shutil.copy(DEFAULT_METADATA_PATH, tmp_path / "grooming.json")
    with pytest.raises(ModelError, match=r"vocabulary .*grooming\.vocab"):
        OnnxClassifier(path)


def test_missing_metadata_is_a_clear_error(tmp_path: Path) -> None:
    if not DEFAULT_MODEL_PATH.is_file():
        pytest.skip("shipped model not built")
    path = tmp_path / "grooming.onnx"
    shutil.copy(DEFAULT_MODEL_PATH, path)
    with pytest.raises(ModelError, match="metadata"):
        OnnxClassifier(path)


def test_normalisation_version_mismatch_is_refused(tmp_path: Path) -> None:
    if not DEFAULT_MODEL_PATH.is_file():
        pytest.skip("shipped model not built")
    path = tmp_path / "grooming.onnx"
    shutil.copy(DEFAULT_MODEL_PATH, path)
    meta = json.loads(DEFAULT_METADATA_PATH.read_text(encoding="utf-8"))
    meta["normalization"]["version"] = 999
    (tmp_path / "grooming.json").write_text(json.dumps(meta), encoding="utf-8")
    with pytest.raises(ModelError, match="normalisation"):
        OnnxClassifier(path)


@pytest.fixture(scope="module")
def real_model() -> OnnxClassifier:
    if not DEFAULT_MODEL_PATH.is_file():
        pytest.fail(f"{DEFAULT_MODEL_PATH} missing: run python -m groomguard.models.train")
    return OnnxClassifier(DEFAULT_MODEL_PATH)


@pytest.mark.model
def test_real_model_separates_grooming_from_benign(real_model: OnnxClassifier) -> None:
    bad = real_model.classify(GROOMING_WINDOWS)
    good = real_model.classify(BENIGN_WINDOWS)
    # Clear separation; the shipped threshold is tuned for precision (F0.5), so short
    # made-up windows need not all cross it: the detector adds stage progression on top.
    assert min(bad) > max(good)
    assert all(s > real_model.base_rate for s in bad)
    assert all(s < real_model.threshold for s in good)


@pytest.mark.model
def test_real_model_survives_bad_input(real_model: OnnxClassifier) -> None:
    weird = [
        "",
        "😀😀😀",
        "你好，你在做什么",
        "a" * 2_000_000,
        "\x00\x01\x02\xff" * 500,
        "\ud800 lone surrogate",
        "Ｓ Ｎ Ａ Ｐ",
    ]
    scores = real_model.classify(weird)
    assert len(scores) == len(weird)
    assert all(0.0 <= s <= 1.0 for s in scores)
    # Empty, emoji-only, unknown-script and binary text carry no evidence: exactly the base rate, no run.
    for i in (0, 1, 2, 4):
        assert scores[i] == real_model.base_rate, weird[i][:20]
    assert real_model.classify([]) == []


@pytest.mark.model
@pytest.mark.parametrize(
    "text", ["ok", "k", "yes", "lol", "sure", "ok cool", "haha", "👍", "مرحبا كيف حالك", "שלום מה שלומך"]
)
def test_uninformative_text_scores_the_base_rate(real_model: OnnxClassifier, text: str) -> None:
    # The examples: "k" 0.99, "ok" 0.99, "lol" 0.90 and Arabic 0.504 before this model.
    assert real_model.classify([text]) == [real_model.base_rate]
    assert real_model.base_rate < real_model.threshold


@pytest.mark.model
def test_runtime_needs_no_sklearn() -> None:
    # The bot's runtime dependencies are onnxruntime + numpy only: load and score the real
    # model in a fresh interpreter where importing sklearn or skl2onnx is made to fail.
    code = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('sklearn', 'skl2onnx', 'scipy'):\n"
        "            raise ImportError('blocked: ' + name)\n"
        "sys.meta_path.insert(0, Block())\n"
        "from groomguard.classifier import load_default_classifier\n"
        "print(load_default_classifier().classify(['hello there'])[0])\n"
    )
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert 0.0 <= float(done.stdout.strip()) <= 1.0
