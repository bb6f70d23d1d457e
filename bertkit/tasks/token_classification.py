"""Named-entity recognition (token classification): sentences of words -> sub-token features -> a tag per word.

The first sub-token of each word carries its tag (or, with `data.label_all_subtokens`, every sub-token,
B- turned into I- after the first); the rest are ignored by the loss. A sentence longer than
`max_seq_length` sub-tokens becomes overlapping windows (`data.stride`), and each word takes its
prediction from the window where it sits farthest from the edges, so no word loses its prediction.
Scores are entity-level, with seqeval: its default mode reads tags as conlleval does (an I- after O or after
another type still starts an entity), its strict IOB2 mode only counts entities a B- starts and that are
tagged consistently.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import datasets
import numpy as np
import torch
from seqeval.metrics import accuracy_score, classification_report
from seqeval.metrics.sequence_labeling import get_entities
from seqeval.scheme import IOB1, IOB2, IOBES
from transformers import AutoModelForTokenClassification, AutoTokenizer, PreTrainedTokenizerBase

from bertkit.core.batch import IGNORE_INDEX, Batch, Gathered, Scores
from bertkit.core.divergence import Distributions, OutputKind
from bertkit.core.errors import DataError
from bertkit.core.schema import input_path, require
from bertkit.core.seeding import fingerprint, tokenizer_fingerprint
from bertkit.core.task import Head, TaskData, TaskSpec
from bertkit.readers.conll import LINE, TAGS, WORDS, line_counts, read_columns, read_hub
from bertkit.readers.files import decoded_lines, file_keys
from bertkit.readers.tag_schemes import TAG, TagScheme, from_iob2
from bertkit.settings import ModelConfig
from bertkit.tasks.base import PREDICTED, CardFacts, Outputs, Prediction, Task, pipeline_usage
from bertkit.tasks.fine_tuning import (
    BadRows,
    DynamicPadding,
    FineTuningDataConfig,
    first_rows,
    map_processes,
    windows_left_to_right,
)

log = logging.getLogger(__name__)
_FORMAT_VERSION = 2  # bump when features change, to retire old caches (2: words begin where word ids change)
MODEL_COLUMNS = ("input_ids", "token_type_ids", "attention_mask", "labels")
SENTENCE, FIRST_OF_WORD = "sentence_index", "first_of_word"
"""Each feature's sentence, and per sub-token the index of the word it begins (-1: none, or special)."""
_FILES = {"train": "train_file", "validation": "validation_file", "test": "test_file"}


@dataclass(kw_only=True, slots=True)
class NerDataConfig(FineTuningDataConfig):
    """Data recipe: a tag per word, from CoNLL-style column files (CoNLL-2003 or your own) or the Hub."""

    train_file: str | None = input_path(None)
    """Column file: a word per line, tag in column data.tag_column, blank lines between sentences,
    -DOCSTART- lines between documents. None: the Hub's eriktks/conll2003 (network)."""
    validation_file: str | None = input_path(None)
    """Scored during training (each epoch) and at the end."""
    test_file: str | None = input_path(None)
    """Scored once, at the end."""
    hub_name: str = "eriktks/conll2003"
    tag_column: int = -1
    """Column of the tag (0-based; negative counts from the end: CoNLL-2003's NER tag is the last)."""
    to_iob2: bool = True
    """Read the file's tags as IOB2 (B- starts every entity), whatever their scheme: IOB1 (CoNLL-2003's: I- starts
    an entity unless it follows one of its type), IOB2, BIOES/IOBES (S-, E-; BILOU's U-, L-) or IO."""
    tag_scheme: TagScheme = TagScheme.iob2
    """Scheme of the prediction files and of the strict scores (`strict_*`): iob2, iob1, bioes or io (IO cannot
    tell adjacent entities of one type apart, so it has no strict scores)."""
    bad_lines: BadRows = BadRows.error
    """A line with another number of columns than the file's first: stop naming it, or skip it (counted)."""
    label_all_subtokens: bool = False
    """Train on every sub-token of a word (B- becomes I- after the first), not only the first."""
    max_seq_length: int = 128
    stride: int = 32
    """Sub-tokens shared by consecutive windows of a sentence longer than max_seq_length."""

    def __post_init__(self) -> None:
        require(self.max_seq_length >= 8, "data.max_seq_length", "must be >= 8")
        require(0 <= self.stride < self.max_seq_length // 2, "data.stride", "must be in [0, max_seq_length / 2)")
        FineTuningDataConfig.__post_init__(self)
        require(
            self.train_file is not None or (self.validation_file is None and self.test_file is None),
            "data.train_file",
            "is needed with data.validation_file or data.test_file (without files, all splits come from the Hub)",
        )


class TokenClassificationTask(Task[NerDataConfig]):
    """A tag per word (named entities), scored at the entity level."""

    compares_outputs = True

    labels: tuple[str, ...]
    """The training set's tags."""
    decoders: dict[str, WordTags]

    def build(self, tokenizer: PreTrainedTokenizerBase, cache_dir: Path) -> TaskData:
        """Read, check tags against the training set's, build windows, and the way back to words."""
        if not tokenizer.is_fast:
            raise DataError("NER features need the word ids of a fast tokenizer")
        tokenizer = words_tokenizer(tokenizer)
        sentences, origin = _read(self.cfg, str(cache_dir / "datasets"))
        self.labels = tag_set(sentences["train"])
        if self.checkpoint_labels is not None:
            unknown = self.checkpoint_labels.unknown(self.labels)
            if unknown:
                raise self.checkpoint_labels.refuse(unknown, self.cfg.train_file or f"{self.cfg.hub_name} train")
            self.labels = self._checkpoint_tags()
        sentences["train"] = first_rows(sentences["train"], self.cfg.max_train_samples)
        for split in ("validation", "test"):
            if split in sentences:
                check_tags(
                    sentences[split], self.labels, getattr(self.cfg, _FILES[split]) or f"{self.cfg.hub_name} {split}"
                )
                sentences[split] = first_rows(sentences[split], self.cfg.max_eval_samples)
        key = fingerprint(_FORMAT_VERSION, tokenizer_fingerprint(tokenizer), self.cfg.max_seq_length, self.cfg.stride,
                          self.cfg.label_all_subtokens, self.labels)  # fmt: skip
        features = {split: _features(rows, tokenizer, self.cfg, self.labels, key) for split, rows in sentences.items()}
        stats = {split: split_stats(sentences[split], features[split]) for split in sentences}
        for split in stats:
            path = getattr(self.cfg, _FILES[split])
            stats[split] |= line_counts(str(Path(path).expanduser())) if path is not None else {}
        for split, numbers in stats.items():
            log.info("%s: %s", split, ", ".join(f"{k}={v}" for k, v in numbers.items()))
        scheme = self.cfg.tag_scheme
        self.decoders = {
            s: WordTags(sentences[s], features[s], self.labels, True, scheme) for s in sentences if s != "train"
        }
        inputs = {split: ds.select_columns([c for c in MODEL_COLUMNS if c in ds.column_names])
                  for split, ds in features.items()}  # fmt: skip
        collate = DynamicPadding(tokenizer, self.cfg.pad_to_multiple_of, MODEL_COLUMNS, token_labels=True)
        return TaskData(
            spec=TaskSpec.of(tokenizer, self.cfg.max_seq_length),
            train=inputs["train"],
            evaluation={"validation": inputs["validation"]} if "validation" in inputs else {},
            final_evaluation={"test": inputs["test"]} if "test" in inputs else {},
            collate_train=collate,
            collate_eval=collate,
            stats=stats,
            description=f"NER from {origin}",
        )

    def _checkpoint_tags(self) -> tuple[str, ...]:
        assert self.checkpoint_labels is not None
        if self.checkpoint_labels.placeholders:
            raise DataError(
                f"model.name_or_path={self.checkpoint_labels.checkpoint!r} names its tags LABEL_0, LABEL_1, ... "
                "only, so which tag each id means is unknown; use a checkpoint whose config.json names them"
            )
        return self.checkpoint_labels.names

    def predict_file(self, path: str, tokenizer: PreTrainedTokenizerBase, cache_dir: Path, top_k: int) -> Prediction:
        """Raw text (a sentence per line, split into words by the tokenizer's pre-tokenizer) or a CoNLL column
        file (words in the first column; tags, if there, checked and kept beside the predictions)."""
        if not tokenizer.is_fast:
            raise DataError("NER features need the word ids of a fast tokenizer")
        tokenizer = words_tokenizer(tokenizer)
        self.labels = self._checkpoint_tags()
        sentences = read_for_prediction(path, self.cfg, tokenizer, str(cache_dir / "datasets"))
        tagged = TAGS in sentences.column_names
        if tagged:
            check_tags(sentences, self.labels, path)
        else:  # placeholder tags for the feature builder; the file has none
            sentences = sentences.map(lambda row: {TAGS: [self.labels[0]] * len(row[WORDS])})
        key = fingerprint(_FORMAT_VERSION, tokenizer_fingerprint(tokenizer), self.cfg.max_seq_length, self.cfg.stride,
                          self.cfg.label_all_subtokens, self.labels)  # fmt: skip
        features = _features(sentences, tokenizer, self.cfg, self.labels, key)
        log.info("%s: %s", path, ", ".join(f"{k}={v}" for k, v in split_stats(sentences, features).items()))
        self.decoders = {PREDICTED: WordTags(sentences, features, self.labels, tagged, self.cfg.tag_scheme)}
        collate = DynamicPadding(tokenizer, self.cfg.pad_to_multiple_of, MODEL_COLUMNS, token_labels=True)
        inputs = features.select_columns([c for c in MODEL_COLUMNS[:-1] if c in features.column_names])
        return self.prediction(inputs, collate, len(sentences))

    def prediction_records(self, split: str, decoded: list[list[str]]) -> list[dict[str, Any]]:
        """Per sentence: its text (a raw line, or the words joined by spaces), words, tags and entity spans
        (type, characters in the text, words, text)."""
        return self.decoders[split].records(decoded)

    @property
    def headline_metrics(self) -> tuple[str, ...]:
        return ("f1",)

    def head(self, model: ModelConfig) -> Head:
        id2label = dict(enumerate(self.labels))
        return Head(
            model_class=AutoModelForTokenClassification,
            config={
                "num_labels": len(self.labels),
                "id2label": id2label,
                "label2id": {n: i for i, n in id2label.items()},
            },
        )

    def output_distributions(self, output: Outputs, batch: Batch) -> Distributions:
        """The tag distributions of the positions that carry a label (each word's first piece)."""
        return Distributions(OutputKind.categorical, output["logits"], keep=batch["labels"] != IGNORE_INDEX)

    def gather(self, batch: Batch, output: Any) -> dict[str, torch.Tensor]:
        return {"predictions": output.logits.argmax(dim=-1)}

    def decode(self, split: str, gathered: Gathered) -> list[list[str]]:
        """A tag per word of every sentence of the split."""
        return self.decoders[split].tags(gathered)

    def score(self, split: str, decoded: list[list[str]]) -> Scores:
        gold = self.decoders[split].gold
        assert gold is not None, f"{split} has no tags to score"
        return {**entity_scores(decoded, gold, self.cfg.tag_scheme), "sentences": len(decoded)}

    def prediction_files(self, split: str, decoded: list[list[str]]) -> dict[str, str]:
        return {f"{split}.txt": self.decoders[split].columns(decoded)}

    def card(self) -> CardFacts:
        return CardFacts(
            pipeline_tag="token-classification",
            usage=pipeline_usage(
                "token-classification",
                'print(pipe("Peter Blackburn spoke in Brussels.", aggregation_strategy="first"))',
            ),
        )


STRICT = {TagScheme.iob2: IOB2, TagScheme.iob1: IOB1, TagScheme.bioes: IOBES}
"""seqeval's strict mode per scheme: only entities tagged as the scheme demands count."""


def entity_scores(
    predictions: list[list[str]], references: list[list[str]], scheme: TagScheme = TagScheme.iob2
) -> dict[str, float]:
    """Entity-level precision, recall and F1, overall and per entity type, in seqeval's default mode (on IOB2
    tags, as conlleval reads them) and its strict mode in `scheme` (`strict_*`), and token accuracy (every word,
    O included, as conlleval counts it)."""
    scores: dict[str, float] = {"accuracy": float(accuracy_score(references, predictions))}
    modes: list[tuple[str, dict, list[list[str]], list[list[str]]]] = [("", {}, references, predictions)]
    if scheme in STRICT:
        gold = [from_iob2(tags, scheme) for tags in references]
        guess = [from_iob2(tags, scheme) for tags in predictions]
        modes.append(("strict_", {"mode": "strict", "scheme": STRICT[scheme]}, gold, guess))
    for prefix, options, gold, guess in modes:
        report = classification_report(gold, guess, output_dict=True, zero_division=0, **options)
        micro = report.pop("micro avg")
        for name in ("precision", "recall", "f1"):
            scores[f"{prefix}{name}"] = float(micro["f1-score" if name == "f1" else name])
        for entity, numbers in report.items():
            if entity.endswith(" avg"):
                continue
            for name in ("precision", "recall", "f1"):
                scores[f"{prefix}{entity}_{name}"] = float(numbers["f1-score" if name == "f1" else name])
            if not prefix:
                scores[f"{entity}_number"] = int(numbers["support"])
    return scores


def _read(cfg: NerDataConfig, datasets_cache: str) -> tuple[dict[str, datasets.Dataset], str]:
    if cfg.train_file is None:
        return read_hub(cfg.hub_name, datasets_cache), f"the Hub ({cfg.hub_name})"
    sentences = {}
    for split, attribute in _FILES.items():
        path = getattr(cfg, attribute)
        if path is None:
            continue
        file = Path(path).expanduser()
        if not file.is_file():
            raise DataError(f"data.{attribute}: {path!r} does not exist (a CoNLL column file such as eng.train)")
        skip = cfg.bad_lines == BadRows.skip
        rows = read_columns(file_keys([file])[0], cfg.tag_column, cfg.to_iob2, datasets_cache, skip)
        if len(rows) == 0:
            raise DataError(f"data.{attribute}: {path} holds no sentences (an empty file?)")
        sentences[split] = rows
    if "validation" not in sentences and "test" not in sentences:
        raise DataError("data.validation_file or data.test_file: give at least one file to score the model on")
    return sentences, cfg.train_file


CONLL_SUFFIXES = (".conll", ".iob", ".iob2", ".bio", ".bioes")
TEXT, STARTS = "text", "word_starts"
"""Raw-text input: each sentence's line, and where each word begins in it."""


def read_for_prediction(path: str, cfg: NerDataConfig, tokenizer, datasets_cache: str) -> datasets.Dataset:
    """The sentences of a file to tag: CoNLL columns when its name ends in .conll (.iob, .bio, ...), it starts
    with -DOCSTART-, or every line has the same number of columns, the last holding tags; else raw text."""
    file = Path(path).expanduser()
    if not file.is_file():
        raise DataError(f"INPUT: {path!r} does not exist")
    head = [line.split() for line, _ in zip(decoded_lines(file), range(200), strict=False)]
    words = [columns for columns in head if columns]
    if not words:
        raise DataError(f"{path}: holds no text")
    widths = {len(columns) for columns in words}
    conll = file.suffix.lower() in CONLL_SUFFIXES or words[0][0] == "-DOCSTART-"
    if len(widths) == 1 and min(widths) >= 2 and -min(widths) <= cfg.tag_column < min(widths):
        conll |= all(TAG.match(c[cfg.tag_column]) for c in words if c[0] != "-DOCSTART-")
    if conll:
        tag_column = cfg.tag_column if min(widths) >= 2 else 0  # words only: no tags to read
        rows = read_columns(
            file_keys([file])[0], tag_column, cfg.to_iob2, datasets_cache, cfg.bad_lines == BadRows.skip
        )
        return rows if min(widths) >= 2 else rows.remove_columns(TAGS)
    lines = [(n, line.rstrip("\r\n")) for n, line in enumerate(decoded_lines(file), 1) if line.strip()]
    spans = _word_spans([line for _, line in lines], tokenizer)
    return datasets.Dataset.from_dict({
        WORDS: [[line[a:b] for a, b in words] for (_, line), words in zip(lines, spans, strict=True)],
        LINE: [n for n, _ in lines], TEXT: [line for _, line in lines],
        STARTS: [[a for a, _ in words] for words in spans],
    })  # fmt: skip


def _word_spans(lines: list[str], tokenizer) -> list[list[tuple[int, int]]]:
    """Each line's words as the tokenizer splits text into words (normalizer and pre-tokenizer: punctuation
    apart, CJK characters one by one), as character spans in the line."""
    encoded = tokenizer(lines, add_special_tokens=False, return_attention_mask=False)
    spans = []
    for row in range(len(lines)):
        words = dict.fromkeys(w for w in encoded.word_ids(row) if w is not None)
        spans.append([tuple(encoded.word_to_chars(row, w)) for w in words])
    return spans


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
    tokenizer = windows_left_to_right(tokenizer)
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
        out: dict[str, list] = {name: encoded[name] for name in MODEL_COLUMNS[:-1] if name in encoded}
        out[SENTENCE], out[FIRST_OF_WORD], out["labels"] = [], [], []
        for feature, source in enumerate(sources):
            word_ids = encoded.word_ids(feature)
            first = _first_of_words(word_ids, offsets[feature])
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
        num_proc=map_processes(cfg, len(rows)),
        new_fingerprint=fingerprint(rows._fingerprint, key),
        desc="NER features",
    )


def _first_of_words(word_ids: list[int | None], offsets: list[tuple[int, int]]) -> list[int]:
    """Per sub-token, the word it begins, or -1. A sub-token begins its word when the one before belongs to
    another; at a window's start (after special tokens) the word may have begun in the window before, so there
    the sub-token must also start at character 0 of its word (words are given apart)."""
    first: list[int] = []
    previous = None
    for word, span in zip(word_ids, offsets, strict=True):
        begins = word is not None and word != previous and (previous is not None or span[0] == 0)
        first.append(word if begins and word is not None else -1)
        previous = word
    return first


def words_tokenizer(tokenizer: PreTrainedTokenizerBase) -> PreTrainedTokenizerBase:
    """A tokenizer that reads words given apart as a running text reads them: a byte-level BPE (RoBERTa,
    ModernBERT's kind) needs the space before each word added (add_prefix_space), as it is loaded."""
    if getattr(tokenizer, "add_prefix_space", None) is False:
        return AutoTokenizer.from_pretrained(tokenizer.name_or_path, add_prefix_space=True)
    return tokenizer


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

    def __init__(
        self,
        sentences: datasets.Dataset,
        features: datasets.Dataset,
        labels: tuple[str, ...],
        tagged: bool = True,
        scheme: TagScheme = TagScheme.iob2,
    ) -> None:
        self.words, self.labels, self.scheme = sentences[WORDS], labels, scheme
        self.gold: list[list[str]] | None = sentences[TAGS] if tagged else None
        """The file's tags; None when it has none (predicted text)."""
        self.texts = sentences[TEXT] if TEXT in sentences.column_names else [" ".join(w) for w in self.words]
        self.starts = sentences[STARTS] if STARTS in sentences.column_names else [_joined(w) for w in self.words]
        self.sentence_of = features[SENTENCE]
        self.first_of_word = features[FIRST_OF_WORD]

    def tags(self, outputs: Gathered) -> list[list[str]]:
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

    def columns(self, predicted_tags: list[list[str]]) -> str:
        """word gold predicted, a line per word and a blank line after each sentence: conlleval's input (word
        predicted for a file without tags)."""
        lines = []
        for sentence, (words, predicted) in enumerate(zip(self.words, predicted_tags, strict=True)):
            predicted = from_iob2(predicted, self.scheme)
            gold = None if self.gold is None else from_iob2(self.gold[sentence], self.scheme)
            columns = [words, predicted] if gold is None else [words, gold, predicted]
            lines += [" ".join(fields) for fields in zip(*columns, strict=True)]
            lines.append("")
        return "\n".join(lines) + "\n"

    def records(self, predicted_tags: list[list[str]]) -> list[dict[str, Any]]:
        records = []
        for text, words, starts, tags in zip(self.texts, self.words, self.starts, predicted_tags, strict=True):
            entities = [
                {"type": kind, "start": starts[first], "end": starts[last] + len(words[last]),
                 "first_word": first, "last_word": last, "text": text[starts[first] : starts[last] + len(words[last])]}
                for kind, first, last in get_entities(tags)
            ]  # fmt: skip
            records.append({"text": text, "words": words, "tags": from_iob2(tags, self.scheme), "entities": entities})
        return records


def _joined(words: list[str]) -> list[int]:
    """Where each word begins in the words joined by single spaces."""
    starts, position = [], 0
    for word in words:
        starts.append(position)
        position += len(word) + 1
    return starts
