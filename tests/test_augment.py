"""Augmenting a small training set with a masked language model's word replacements: seeded per example,
cached, counted, and refused where the model cannot predict words."""

from __future__ import annotations

import json

import datasets
import pytest
import transformers

from bertkit import config, train
from bertkit.core.errors import ConfigError, ModelError
from bertkit.tasks.classification import augment
from bertkit.tasks.classification.augment import AugmentConfig, AugmentMethod

from .conftest import ASSETS, GLUE_FIXTURES, compose_config
from .encoders import build

TEXTS = [
    "The film was a joy, from start to finish!",
    "(Terrible) acting and a dull plot.",
    "...",
    "Loved it",
    "An uneven but often moving story about a family that falls apart",
    "NASA launched the probe today.",
]


@pytest.fixture(scope="module")
def masked_lm(tmp_path_factory):
    """A tiny BERT masked LM (random weights, a WordPiece vocabulary trained on the test assets)."""
    return build("bert", tmp_path_factory.mktemp("mlm") / "bert", ASSETS)


def rows() -> datasets.Dataset:
    return datasets.Dataset.from_dict(
        {"text": TEXTS, "label": [1, 0, 0, 1, 1, 0], "index": [str(i) for i in range(len(TEXTS))]}
    )


def settings(model, **changes) -> AugmentConfig:
    return AugmentConfig(**{"method": AugmentMethod.mlm, "model": str(model), "seed": 7, "fraction": 0.3, **changes})


def test_copies_replace_a_fraction_of_each_texts_words_and_keep_labels_and_punctuation(masked_lm, tmp_path):
    made, counts = augment.augmented(rows(), settings(masked_lm, copies=2), ["text"], tmp_path)
    assert len(made) == 3 * len(TEXTS)
    assert made["label"] == [1, 0, 0, 1, 1, 0] * 3
    changed = 0
    for original, copy in zip(TEXTS * 2, made["text"][len(TEXTS) :], strict=True):
        before, after = original.split(), copy.split()
        assert len(before) == len(after)
        differing = [(a, b) for a, b in zip(before, after, strict=True) if a != b]
        words = [w for w in before if augment._WORD.match(w)]
        assert len(differing) <= max(1, round(0.3 * len(words))) if words else not differing
        for a, b in differing:  # punctuation around a word stays; the word itself changes
            old, new = augment._WORD.match(a), augment._WORD.match(b)
            assert old and new and (old.group(1), old.group(3)) == (new.group(1), new.group(3))
            assert old.group(2).lower() != new.group(2).lower()
        changed += len(differing)
    assert made["text"][len(TEXTS) + 2] == "..."  # no word to replace
    assert counts["augmented_examples"] == 2 * len(TEXTS) and counts["augmented_words_replaced"] == changed > 0


def test_copies_depend_on_the_seed_only_and_are_cached(masked_lm, tmp_path, monkeypatch):
    first, _ = augment.augmented(rows(), settings(masked_lm), ["text"], tmp_path / "a")
    rebatched, _ = augment.augmented(rows(), settings(masked_lm, batch_size=2), ["text"], tmp_path / "b")
    other, _ = augment.augmented(rows(), settings(masked_lm, seed=8), ["text"], tmp_path / "c")
    assert first["text"] == rebatched["text"] and first["text"] != other["text"]

    def must_not_run(*args):
        raise AssertionError("the cached copies should have been read")

    monkeypatch.setattr(augment, "_copies", must_not_run)
    again, counts = augment.augmented(rows(), settings(masked_lm), ["text"], tmp_path / "a")
    assert again["text"] == first["text"] and counts["augmented_examples"] == len(TEXTS)


def test_a_model_without_a_masked_lm_head_is_refused(tmp_path, masked_lm):
    folder = tmp_path / "encoder_only"
    transformers.AutoModel.from_pretrained(masked_lm).save_pretrained(folder)
    transformers.AutoTokenizer.from_pretrained(masked_lm).save_pretrained(folder)
    with pytest.raises(ModelError, match=r"data\.augment\.model=.*has no trained masked-LM head \(cls\.predictions"):
        augment.augmented(rows(), settings(folder), ["text"], tmp_path / "cache")
    assert not (tmp_path / "cache").exists()


def test_augmented_fine_tuning_counts_its_copies(masked_lm, tmp_path, cache_dir, tiny_checkpoint):
    run_dir = tmp_path / "run"
    train.run(compose_config([
        "+experiment=glue_mrpc", f"data.glue_dir={GLUE_FIXTURES}", f"model.name_or_path={tiny_checkpoint}",
        "data.augment.method=mlm", f"data.augment.model={masked_lm}", "data.augment.copies=2", "seed=3",
        "trainer.max_steps=2", "trainer.per_device_batch_size=4", "trainer.progress_bar=false",
        f"output_dir={run_dir}", f"cache_dir={cache_dir}",
    ]))  # fmt: skip
    train_stats = json.loads((run_dir / "metrics.json").read_text())["data"]["train"]
    originals = len((GLUE_FIXTURES / "MRPC" / "train.tsv").read_text().splitlines()) - 1
    assert train_stats["examples"] == 3 * originals and train_stats["augmented_examples"] == 2 * originals
    assert 0 < train_stats["augmented_words_replaced"] < train_stats["augmented_words"]
    assert "seed: 3" in (run_dir / "config.yaml").read_text().split("augment:")[1].split("max_seq")[0]


def test_augment_settings_are_checked_and_default_to_the_model_and_seed(tiny_checkpoint):
    run = config.load(compose_config(["+experiment=glue_rte", "data.augment.method=mlm", "seed=5",
                                      f"model.name_or_path={tiny_checkpoint}"]))  # fmt: skip
    assert run.data.augment.model == str(tiny_checkpoint) and run.data.augment.seed == 5
    with pytest.raises(ConfigError, match=r"data\.augment\.fraction"):
        config.load(compose_config(["+experiment=glue_rte", "data.augment.method=mlm", "data.augment.fraction=0"]))


PIECES = [
    ("bert", "the", "##or"),
    ("roberta", "Ġthe", "or"),
    ("xlm-roberta", "▁the", "or"),
    ("deberta-v2", "▁w", "art"),
]


@pytest.mark.parametrize(("kind", "whole", "part"), PIECES)
def test_only_pieces_that_begin_a_word_replace_words(kind, whole, part, tmp_path):
    tokenizer = transformers.AutoTokenizer.from_pretrained(build(kind, tmp_path / kind, ASSETS))
    begins = augment.starts_word(tokenizer)
    assert begins(whole, False) and not begins(part, False)
    # the text's first word: byte-level BPE has no space before it, so its piece has no Ġ
    assert begins(whole, True) and begins(part, True) == (kind == "roberta")
