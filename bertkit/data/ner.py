"""Named-entity recognition (token classification): sentences of words -> sub-token features -> DataBundle,
and back from sub-token predictions to a tag per word.

The first sub-token of each word carries its tag (or, with `data.label_all_subtokens`, every sub-token,
B- turned into I- after the first); the rest are ignored by the loss. A sentence longer than
`max_seq_length` sub-tokens becomes overlapping windows (`data.stride`), and each word takes its
prediction from the window where it sits farthest from the edges, so no word loses its prediction.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import datasets
import numpy as np
from transformers import PreTrainedTokenizerBase

from bertkit.config import NerDataConfig
from bertkit.data.bundle import DataBundle, TaskKind, TaskSpec
from bertkit.data.caching import fingerprint, tokenizer_fingerprint
from bertkit.data.conll_reader import LINE, TAGS, WORDS, read_columns, read_hub
from bertkit.data.files import file_keys
from bertkit.data.fine_tuning import DynamicPadding, first_rows
from bertkit.data.masking import IGNORE_INDEX
from bertkit.errors import DataError

log = logging.getLogger(__name__)
_FORMAT_VERSION = 1  # bump when features change, to retire old caches
MODEL_COLUMNS = ("input_ids", "token_type_ids", "attention_mask", "labels")
SENTENCE, FIRST_OF_WORD = "sentence_index", "first_of_word"
"""Each feature's sentence, and per sub-token the index of the word it begins (-1: none, or special)."""
_FILES = {"train": "train_file", "validation": "validation_file", "test": "test_file"}


def build(cfg: NerDataConfig, tokenizer: PreTrainedTokenizerBase, cache_dir: Path) -> DataBundle:
    """The NER data recipe: read, check tags against the training set's, build windows, and the way back."""
    if not tokenizer.is_fast:
        raise DataError("NER features need the word ids of a fast tokenizer")
    datasets_cache = str(cache_dir / "datasets")
    sentences, origin = _read(cfg, datasets_cache)
    labels = tag_set(sentences["train"])
    sentences["train"] = first_rows(sentences["train"], cfg.max_train_samples)
    for split in ("validation", "test"):
        if split in sentences:
            check_tags(sentences[split], labels, getattr(cfg, _FILES[split]) or f"{cfg.hub_name} {split}")
            sentences[split] = first_rows(sentences[split], cfg.max_eval_samples)

    key = fingerprint(_FORMAT_VERSION, tokenizer_fingerprint(tokenizer), cfg.max_seq_length, cfg.stride,
                      cfg.label_all_subtokens, labels)  # fmt: skip
    features = {split: _features(rows, tokenizer, cfg, labels, key) for split, rows in sentences.items()}
    stats = {split: split_stats(sentences[split], features[split]) for split in sentences}
    for split, numbers in stats.items():
        log.info("%s: %s", split, ", ".join(f"{k}={v}" for k, v in numbers.items()))
    decoders = {split: WordTags(sentences[split], features[split], labels) for split in sentences if split != "train"}
    model_inputs = {split: ds.select_columns([c for c in MODEL_COLUMNS if c in ds.column_names])
                    for split, ds in features.items()}  # fmt: skip
    collate = DynamicPadding(tokenizer, cfg.pad_to_multiple_of, MODEL_COLUMNS, token_labels=True)
    return DataBundle(
        task=TaskSpec(
            kind=TaskKind.token_classification,
            vocab_size=len(tokenizer),
            pad_token_id=tokenizer.pad_token_id,
            max_seq_length=cfg.max_seq_length,
            num_labels=len(labels),
            id2label=dict(enumerate(labels)),
            metric="ner",
        ),
        train=model_inputs["train"],
        evaluation={"validation": model_inputs["validation"]} if "validation" in model_inputs else {},
        final_evaluation={"test": model_inputs["test"]} if "test" in model_inputs else {},
        collate_train=collate,
        collate_eval=collate,
        eval_outputs=lambda batch, output: {"predictions": output.logits.argmax(dim=-1)},
        score_inputs=lambda split, outputs: decoders[split].metric_inputs(outputs),
        prediction_files=lambda outputs: {
            f"{split}.txt": decoders[split].columns(out) for split, out in outputs.items()
        },
        count_tokens=lambda batch: batch["attention_mask"].sum(),
        stats=stats,
        description=f"NER from {origin}",
    )


def _read(cfg: NerDataConfig, datasets_cache: str) -> tuple[dict[str, datasets.Dataset], str]:
    if cfg.train_file is None:
        return read_hub(cfg, datasets_cache), f"the Hub ({cfg.hub_name})"
    sentences = {}
    for split, attribute in _FILES.items():
        path = getattr(cfg, attribute)
        if path is None:
            continue
        file = Path(path).expanduser()
        if not file.is_file():
            raise DataError(f"data.{attribute}: {path!r} does not exist (a CoNLL column file such as eng.train)")
        rows = read_columns(file_keys([file])[0], cfg, datasets_cache)
        if len(rows) == 0:
            raise DataError(f"data.{attribute}: {path} holds no sentences (an empty file?)")
        sentences[split] = rows
    if "validation" not in sentences and "test" not in sentences:
        raise DataError("data.validation_file or data.test_file: give at least one file to score the model on")
    return sentences, cfg.train_file


def tag_set(train: datasets.Dataset) -> tuple[str, ...]:
    """The training set's tags: O first, then by entity type, B- before I-."""
    seen = {tag for tags in train[TAGS] for tag in tags}
    return tuple(sorted(seen, key=lambda tag: (tag != "O", tag[2:], tag[:2])))


def check_tags(rows: datasets.Dataset, labels: tuple[str, ...], where: str) -> None:
    known = set(labels)
    for tags, line in zip(rows[TAGS], rows[LINE], strict=True):
        unknown = next((i for i, tag in enumerate(tags) if tag not in known), None)
        if unknown is not None:
            raise DataError(
                f"{where}: line {line + unknown}: tag {tags[unknown]!r} is not among the training file's tags "
                f"{list(labels)}"
            )


def _features(rows: datasets.Dataset, tokenizer, cfg: NerDataConfig, labels: tuple[str, ...], key: str):
    tag_ids = {tag: i for i, tag in enumerate(labels)}
    inside = {i: tag_ids.get("I-" + tag[2:], i) for tag, i in tag_ids.items() if tag.startswith("B-")}

    def encode(batch: dict[str, list], indices: list[int]) -> dict[str, list]:
        encoded = tokenizer(
            batch[WORDS],
            is_split_into_words=True,
            truncation=True,
            max_length=cfg.max_seq_length,
            stride=cfg.stride,
            return_overflowing_tokens=True,
            return_offsets_mapping=True,
        )
        sources = encoded.pop("overflow_to_sample_mapping")
        offsets = encoded.pop("offset_mapping")
        out: dict[str, list] = {name: encoded[name] for name in ("input_ids", "token_type_ids", "attention_mask")}
        out[SENTENCE], out[FIRST_OF_WORD], out["labels"] = [], [], []
        for feature, source in enumerate(sources):
            word_ids = encoded.word_ids(feature)
            # With words given apart, a sub-token starting at character 0 of its word begins it: this holds in
            # windows that start inside a word too, where the word's first sub-token is in the window before.
            first = [
                w if w is not None and span[0] == 0 else -1 for w, span in zip(word_ids, offsets[feature], strict=True)
            ]
            tags = batch[TAGS][source]
            labels_out = []
            for w, begins in zip(word_ids, first, strict=True):
                if w is None:
                    labels_out.append(IGNORE_INDEX)
                elif begins >= 0:
                    labels_out.append(tag_ids[tags[w]])
                elif cfg.label_all_subtokens:
                    tag = tag_ids[tags[w]]
                    labels_out.append(inside.get(tag, tag))
                else:
                    labels_out.append(IGNORE_INDEX)
            out[SENTENCE].append(indices[source])
            out[FIRST_OF_WORD].append(first)
            out["labels"].append(labels_out)
        return out

    return rows.map(
        encode,
        batched=True,
        with_indices=True,
        remove_columns=rows.column_names,
        num_proc=cfg.num_proc if cfg.num_proc > 1 and len(rows) > 1000 else None,
        new_fingerprint=fingerprint(rows._fingerprint, key),
        desc="NER features",
    )


def split_stats(sentences: datasets.Dataset, features: datasets.Dataset) -> dict[str, Any]:
    per_sentence = np.bincount(np.asarray(features[SENTENCE], dtype=np.int64), minlength=len(sentences))
    words = sum(len(w) for w in sentences[WORDS])
    covered = sum(len({w for w in first if w >= 0}) for first in _unique_per_sentence(features))
    return {
        "sentences": len(sentences),
        "words": words,
        "features": len(features),
        "sentences_split_into_windows": int((per_sentence > 1).sum()),
        "words_without_subtokens": words - covered,
        "entities": sum(tag.startswith("B-") for tags in sentences[TAGS] for tag in tags),
    }


def _unique_per_sentence(features: datasets.Dataset) -> list[list[int]]:
    merged: dict[int, list[int]] = {}
    for sentence, first in zip(features[SENTENCE], features[FIRST_OF_WORD], strict=True):
        merged.setdefault(sentence, []).extend(first)
    return list(merged.values())


class WordTags:
    """Gathered sub-token predictions of one split -> a tag per word, and the CoNLL columns to write."""

    def __init__(self, sentences: datasets.Dataset, features: datasets.Dataset, labels: tuple[str, ...]) -> None:
        self.words, self.gold, self.labels = sentences[WORDS], sentences[TAGS], labels
        self.sentence_of = features[SENTENCE]
        self.first_of_word = features[FIRST_OF_WORD]

    def tags(self, outputs: dict[str, np.ndarray]) -> list[list[str]]:
        predictions = outputs["predictions"]
        best: list[list[tuple[int, int]]] = [[(-1, 0)] * len(words) for words in self.words]  # (margin, tag id)
        for feature, (sentence, first) in enumerate(zip(self.sentence_of, self.first_of_word, strict=True)):
            inner = len(first) - 2  # sub-tokens between [CLS] and [SEP]
            for position, word in enumerate(first):
                if word < 0:
                    continue
                margin = min(position - 1, inner - position)  # distance from the window's nearer edge
                if margin > best[sentence][word][0]:
                    best[sentence][word] = (margin, int(predictions[feature, position]))
        # A word with no sub-token (e.g. only characters the tokenizer drops) is predicted O.
        outside = self.labels.index("O") if "O" in self.labels else 0
        return [[self.labels[tag if margin >= 0 else outside] for margin, tag in sentence] for sentence in best]

    def metric_inputs(self, outputs: dict[str, np.ndarray]) -> dict[str, list]:
        return {"predictions": self.tags(outputs), "references": self.gold}

    def columns(self, outputs: dict[str, np.ndarray]) -> str:
        """word gold predicted, a line per word and a blank line after each sentence: conlleval's input."""
        lines = []
        for words, gold, predicted in zip(self.words, self.gold, self.tags(outputs), strict=True):
            lines += [f"{w} {g} {p}" for w, g, p in zip(words, gold, predicted, strict=True)]
            lines.append("")
        return "\n".join(lines) + "\n"
