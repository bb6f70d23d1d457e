"""Sentence and sentence-pair classification (GLUE, your own data): rows -> tokenized splits -> labels or scores.

The readers (`glue.py`, `custom.py`) bring each split as rows with the columns of `readers.glue_tsv` (text,
text_pair?, label?, index) and the label space; everything after that is shared here: tokenization with
truncation counted per split, dynamic padding, the head, what evaluation gathers, and the labels or scores
predicted from it.
"""

from __future__ import annotations

import logging
from abc import abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import datasets
import numpy as np
import torch
from scipy.special import softmax
from transformers import AutoModelForSequenceClassification, PreTrainedTokenizerBase

from bertkit.core.batch import Batch, Gathered, Scores
from bertkit.core.divergence import Distributions, OutputKind
from bertkit.core.errors import DataError
from bertkit.core.schema import require
from bertkit.core.seeding import fingerprint, tokenizer_fingerprint
from bertkit.core.task import Head, TaskData, TaskSpec
from bertkit.readers.files import EncodingErrors, read_table_file, row_location, text_lines
from bertkit.readers.glue_tsv import INDEX, LABEL, TEXT, TEXT_PAIR
from bertkit.settings import ModelConfig
from bertkit.tasks.base import PREDICTED, CardFacts, CheckpointLabels, Outputs, Prediction, Task, pipeline_usage
from bertkit.tasks.classification import augment, windows
from bertkit.tasks.classification.augment import AugmentConfig, AugmentMethod
from bertkit.tasks.classification.windows import LongInputs, WindowAggregation
from bertkit.tasks.fine_tuning import (
    DynamicPadding,
    FineTuningDataConfig,
    first_rows,
    map_processes,
    tsv,
    warn_if_truncated,
)

log = logging.getLogger(__name__)
_FORMAT_VERSION = 1  # bump when tokenization changes, to retire old caches
MODEL_COLUMNS = ("input_ids", "token_type_ids", "attention_mask", "labels")
_PROBLEMS = {(True, False): "regression", (False, False): "single_label_classification",
             (False, True): "multi_label_classification"}  # fmt: skip
"""transformers' problem_type, by (regression, multi-label): it picks the loss (MSE, cross-entropy, BCE)."""


@dataclass(kw_only=True, slots=True)
class SentenceTaskConfig(FineTuningDataConfig):
    """Settings shared by the recipes that classify a sentence or a sentence pair (GLUE, your own data)."""

    max_seq_length: int = 128
    """Tokens per example, special tokens included; longer examples are truncated and counted."""
    predict: bool = True
    """Predict the unlabeled test split(s) and write them under predictions/."""
    long_inputs: LongInputs = LongInputs.truncate
    """A text longer than max_seq_length: truncate it, or split it into overlapping windows (one text per example)."""
    window_stride: int = 32
    """Windows: tokens shared by consecutive windows of a document."""
    window_aggregation: WindowAggregation = WindowAggregation.mean
    """Windows: a document's logits are the mean, or the maximum, of its windows' logits."""
    max_windows_per_document: int | None = None
    """Windows: train on at most this many windows of each document (its first ones); evaluation reads all."""
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    """Augmented copies of the training examples (data.augment.method=mlm: words replaced by a masked LM's)."""

    def __post_init__(self) -> None:
        require(self.max_seq_length >= 8, "data.max_seq_length", "must be >= 8")
        windowed = self.long_inputs == LongInputs.windows
        require(not windowed or 0 <= self.window_stride < self.max_seq_length // 2, "data.window_stride",
                "must be in [0, max_seq_length / 2)")  # fmt: skip
        limit = self.max_windows_per_document
        require(limit is None or limit >= 1, "data.max_windows_per_document", "must be >= 1")
        FineTuningDataConfig.__post_init__(self)


@dataclass(kw_only=True)
class SentenceSplits:
    """A task's rows, as the readers deliver them."""

    train: datasets.Dataset
    evaluation: dict[str, datasets.Dataset]
    """Labeled splits, scored."""
    prediction: dict[str, datasets.Dataset] = field(default_factory=dict)
    """Unlabeled splits, predicted."""
    skipped_rows: dict[str, int] = field(default_factory=dict)
    """Malformed rows left out, per split (reported with the other statistics)."""
    repeated_rows: dict[str, int] = field(default_factory=dict)
    """Rows left out because their text repeats an earlier row's (data.drop_duplicates), per split."""


@dataclass(frozen=True, kw_only=True)
class LabelSpace:
    """Label names by id, or none for regression."""

    names: tuple[str, ...] = ()
    multi_label: bool = False
    """Several labels per example (a 0/1 vector each), scored by sigmoid probabilities."""

    @property
    def is_regression(self) -> bool:
        return not self.names

    @property
    def num_labels(self) -> int:
        return len(self.names) or 1


@dataclass(frozen=True)
class Predictions:
    """One split's predictions: label ids (or scores), and the gold ones where the split has labels."""

    values: np.ndarray
    references: np.ndarray | None
    probabilities: np.ndarray | None = None
    """Each class's probability (softmax of the logits), one row per example; None for regression."""


SentenceConfigT = TypeVar("SentenceConfigT", bound=SentenceTaskConfig)


class SequenceClassificationTask(Task[SentenceConfigT]):
    """One label (or one score) per sentence or sentence pair."""

    compares_outputs = True
    labels: LabelSpace
    rows: dict[str, datasets.Dataset]
    """Each evaluation and prediction split's rows (their `index` names predictions)."""

    def __init__(self, cfg: SentenceConfigT) -> None:
        super().__init__(cfg)
        self.documents: dict[str, np.ndarray] = {}
        """With windows: each split's document of every window, in the order evaluation gathers them."""

    @abstractmethod
    def read(self, cache_dir: Path) -> tuple[SentenceSplits, LabelSpace]:
        """The task's splits as rows, and its labels."""

    @abstractmethod
    def metric(self, predictions: np.ndarray, references: np.ndarray) -> Scores:
        """The task's metric(s) of one split."""

    @abstractmethod
    def description(self) -> str:
        """One line naming the data, for the model card."""

    @abstractmethod
    def read_for_prediction(self, path: str, cache_dir: Path) -> datasets.Dataset:
        """A file of texts as rows (text, text_pair?, index), read the way this recipe reads its files."""

    def build(self, tokenizer: PreTrainedTokenizerBase, cache_dir: Path) -> TaskData:
        splits, self.labels = self.read(cache_dir)
        if self.checkpoint_labels is not None:
            splits, self.labels = _as_checkpoint_labels(splits, self.labels, self.checkpoint_labels)
        rows = {"train": first_rows(splits.train, self.cfg.max_train_samples)}
        augmented: dict[str, int] = {}
        if self.cfg.augment.method != AugmentMethod.none:
            texts = [name for name in (TEXT, TEXT_PAIR) if name in rows["train"].column_names]
            rows["train"], augmented = augment.augmented(rows["train"], self.cfg.augment, texts, cache_dir)
        rows |= {name: first_rows(ds, self.cfg.max_eval_samples) for name, ds in splits.evaluation.items()}
        rows |= {name: first_rows(ds, self.cfg.max_eval_samples) for name, ds in splits.prediction.items()}
        self.rows = rows
        encoded = {name: self._encode(ds, tokenizer, name) for name, ds in rows.items()}
        stats = {name: self._stats(ds) for name, ds in encoded.items()}
        for name, count in splits.skipped_rows.items():
            if name in stats:
                stats[name]["skipped_malformed_rows"] = count
        for name, count in splits.repeated_rows.items():
            stats[name]["repeated_rows_left_out"] = count
        stats["train"] |= augmented
        for name, numbers in stats.items():
            log.info("%s: %s", name, ", ".join(f"{k}={_short(v)}" for k, v in numbers.items()))
            warn_if_truncated(name, numbers.get("truncated_examples", 0), numbers.get("examples", 0), "examples",
                              f"data.max_seq_length={self.cfg.max_seq_length}")  # fmt: skip
        if self.windowed:
            encoded["train"] = windows.first_windows(encoded["train"], self.cfg.max_windows_per_document)
            stats["train"]["windows_trained_on"] = len(encoded["train"])
        inputs = {
            name: ds.select_columns([c for c in MODEL_COLUMNS if c in ds.column_names]) for name, ds in encoded.items()
        }
        collate = DynamicPadding(tokenizer, self.cfg.pad_to_multiple_of, MODEL_COLUMNS)
        return TaskData(
            spec=TaskSpec.of(tokenizer, self.cfg.max_seq_length),
            train=inputs["train"],
            evaluation={name: inputs[name] for name in splits.evaluation},
            prediction={name: inputs[name] for name in splits.prediction},
            collate_train=collate,
            collate_eval=collate,
            stats=stats,
            description=self.description(),
        )

    def predict_file(self, path: str, tokenizer: PreTrainedTokenizerBase, cache_dir: Path, top_k: int) -> Prediction:
        assert self.checkpoint_labels is not None, "predicting needs the checkpoint's labels"
        checkpoint = self.checkpoint_labels
        self.labels = LabelSpace(
            names=() if checkpoint.regression else checkpoint.names, multi_label=checkpoint.multi_label
        )
        rows = self.read_for_prediction(path, cache_dir)
        self.rows = {PREDICTED: rows}
        encoded = self._encode(rows, tokenizer, PREDICTED)
        numbers = self._stats(encoded)
        log.info("%s: %s", path, ", ".join(f"{k}={_short(v)}" for k, v in numbers.items()))
        warn_if_truncated(path, numbers.get("truncated_examples", 0), numbers.get("examples", 0), "examples",
                          f"data.max_seq_length={self.cfg.max_seq_length}")  # fmt: skip
        inputs = encoded.select_columns([c for c in MODEL_COLUMNS if c in encoded.column_names])
        return self.prediction(inputs, DynamicPadding(tokenizer, self.cfg.pad_to_multiple_of, MODEL_COLUMNS), len(rows))

    @property
    def windowed(self) -> bool:
        return self.cfg.long_inputs == LongInputs.windows

    def _encode(self, rows: datasets.Dataset, tokenizer: PreTrainedTokenizerBase, name: str) -> datasets.Dataset:
        """A split's model inputs: one truncated example per row, or every window of every row (whose documents
        are kept, so evaluation can combine them)."""
        key = fingerprint(_FORMAT_VERSION, tokenizer_fingerprint(tokenizer), self.cfg.max_seq_length)
        if not self.windowed:
            return encode(rows, tokenizer, self.cfg, key)
        encoded = windows.encode(rows, tokenizer, self.cfg.max_seq_length, self.cfg.window_stride, key)
        self.documents[name] = np.asarray(encoded[windows.DOCUMENT])
        return encoded

    def _stats(self, encoded: datasets.Dataset) -> dict[str, Any]:
        if self.windowed:
            return windows.stats(encoded)
        return split_stats(encoded, self.labels, self.cfg.max_seq_length)

    def per_document(self, split: str, gathered: Gathered) -> Gathered:
        """With windows, each document's combined logits (and label); else the outputs as they are."""
        if not self.windowed:
            return gathered
        return windows.per_document(gathered, self.documents[split], self.cfg.window_aggregation)

    def head(self, model: ModelConfig) -> Head:
        id2label = dict(enumerate(self.labels.names)) or {0: "score"}
        return Head(
            model_class=AutoModelForSequenceClassification,
            config={
                "num_labels": self.labels.num_labels,
                "id2label": id2label,
                "label2id": {name: i for i, name in id2label.items()},
                "problem_type": _PROBLEMS[(self.labels.is_regression, self.labels.multi_label)],
            },
        )

    def output_distributions(self, output: Outputs, batch: Batch) -> Distributions:
        if self.labels.is_regression:
            return Distributions(OutputKind.scalar, output["logits"])
        kind = OutputKind.bernoulli if self.labels.multi_label else OutputKind.categorical
        return Distributions(kind, output["logits"])

    def gather(self, batch: Batch, output: Any) -> dict[str, torch.Tensor]:
        gathered = {"logits": output.logits.float()}
        if "labels" in batch:
            gathered["labels"] = batch["labels"]
        return gathered

    def decode(self, split: str, gathered: Gathered) -> Predictions:
        gathered = self.per_document(split, gathered)
        logits = gathered["logits"]
        if self.labels.is_regression:
            return Predictions(values=logits[:, 0], references=gathered.get("labels"))
        return Predictions(logits.argmax(axis=-1), gathered.get("labels"), softmax(logits, axis=-1))

    def score(self, split: str, decoded: Predictions) -> Scores:
        assert decoded.references is not None, f"{split} has no labels to score"
        return {**self.metric(decoded.values, decoded.references), "examples": len(decoded.references)}

    def prediction_files(self, split: str, decoded: Predictions) -> dict[str, str]:
        return {f"{split}.tsv": tsv(*self.prediction_table(split, decoded))}

    def prediction_table(self, split: str, decoded: Predictions) -> tuple[list[str], list[list[Any]]]:
        """Header and rows (index, prediction, each class's probability[, label]) of one split's predictions."""
        header = ["index", "prediction"]
        rows: list[list[Any]] = [[i] for i in self.rows[split][INDEX]]
        if self.labels.is_regression:
            rows = [row + [f"{v:.6f}"] for row, v in zip(rows, decoded.values, strict=True)]  # as probabilities
        else:
            rows = [row + [self._named(v)] for row, v in zip(rows, decoded.values, strict=True)]
        if decoded.probabilities is not None:
            header += [f"prob_{name}" for name in self.labels.names]
            rows = [row + [f"{p:.6f}" for p in ps] for row, ps in zip(rows, decoded.probabilities, strict=True)]
        if decoded.references is None:
            return header, rows
        gold = [f"{v:.6g}" for v in decoded.references] if self.labels.is_regression else []  # 3.8, not 3.7999999
        if not self.labels.is_regression:
            gold = [self._named(v) for v in decoded.references]
        return header + ["label"], [row + [g] for row, g in zip(rows, gold, strict=True)]

    def _listed(self, value: Any) -> str | list[str]:
        """A record's prediction or label: a class name, or the names of a label set."""
        if not self.labels.multi_label:
            return self.labels.names[int(value)]
        return [self.labels.names[i] for i in np.flatnonzero(np.asarray(value) > 0.5)]

    def _named(self, value: Any) -> str:
        """A prediction or label in a file: a class name, or a label set's names joined by commas."""
        listed = self._listed(value)
        return listed if isinstance(listed, str) else ",".join(listed)

    def prediction_records(self, split: str, decoded: Predictions) -> list[dict[str, Any]]:
        """index, the text(s), and the predicted score, or label with every class's probability."""
        rows = self.rows[split]
        texts = [rows[TEXT]] + ([rows[TEXT_PAIR]] if TEXT_PAIR in rows.column_names else [])
        records: list[dict[str, Any]] = [
            {INDEX: index, **dict(zip((TEXT, TEXT_PAIR), row_texts, strict=False))}
            for index, *row_texts in zip(rows[INDEX], *texts, strict=True)
        ]
        names = self.labels.names
        if decoded.probabilities is None:
            records = [{**record, "prediction": float(v)} for record, v in zip(records, decoded.values, strict=True)]
        else:
            records = [
                {
                    **record,
                    "prediction": self._listed(v),
                    "probabilities": dict(zip(names, map(float, ps), strict=True)),
                }
                for record, v, ps in zip(records, decoded.values, decoded.probabilities, strict=True)
            ]
        if decoded.references is not None:
            gold = [float(v) if not names else self._listed(v) for v in decoded.references]
            records = [{**record, "label": label} for record, label in zip(records, gold, strict=True)]
        return records

    def card(self) -> CardFacts:
        labels = self.labels
        return CardFacts(
            pipeline_tag="text-classification",
            usage=pipeline_usage(
                "text-classification", 'print(pipe({"text": "first sentence", "text_pair": "second sentence"}))'
            ),
            head="a regression head (one score)" if labels.is_regression else f"labels {', '.join(labels.names)}",
        )


def read_texts(
    path: str,
    columns: tuple[str, str | None],
    encoding_errors: EncodingErrors,
    datasets_cache: str,
    label: tuple[str, LabelSpace] | None = None,
    column_names: list[str] | None = None,
) -> datasets.Dataset:
    """Rows (text, text_pair?, index, label?) of a file to predict: a .txt file holds one text per line (its
    index: the line number; blank lines are left out), a table file the columns named (its index: the row
    number) and, where it has `label` = (column, label space) with a value in every row, the gold labels."""
    text_column, pair_column = columns
    if pair_column == text_column:
        raise DataError(f"{path}: data.text_pair_column={pair_column!r} is data.text_column too; name another")
    if Path(path).suffix.lower() == ".txt":
        if pair_column is not None:
            raise DataError(
                f"{path}: a .txt file holds one text per line, but the model reads pairs ({text_column!r} + "
                f"{pair_column!r}, data.text_pair_column); give a CSV, TSV or JSON Lines file with both columns"
            )
        kept = text_lines(path, "INPUT", encoding_errors)
        return datasets.Dataset.from_dict({TEXT: [t for _, t in kept], INDEX: [n for n, _ in kept]})
    rows = read_table_file(path, "INPUT", datasets_cache, encoding_errors, column_names)
    wanted = {"data.text_column": text_column, "data.text_pair_column": pair_column}
    renamed = {}
    for (setting, column), name in zip(wanted.items(), (TEXT, TEXT_PAIR), strict=True):
        if column is None:
            continue
        if column not in rows.column_names:
            raise DataError(f"{path}: no column {column!r} ({setting}=...); the columns are {rows.column_names}")
        empty = next((i for i, text in enumerate(rows[column]) if not isinstance(text, str)), None)
        if empty is not None:
            raise DataError(f"{path}: {row_location(path, empty)} has no text in column {column!r}")
        renamed[column] = name
    out = rows.select_columns(list(renamed)).rename_columns(renamed)
    out = out.add_column(INDEX, [str(i) for i in range(len(out))])
    if label is None or label[0] not in rows.column_names or None in rows[label[0]]:
        return out
    values = rows[label[0]]
    gold = [float(v) for v in values] if label[1].is_regression else label_ids(path, values, label[1], "the model")
    return out.add_column(LABEL, gold)


def label_ids(path: str, values: Sequence[Any], labels: LabelSpace, known_by: str) -> list[int]:
    """A file's labels (as written: strings, numbers, booleans) as label ids; one that `known_by` (the training
    file, the model) does not have names its row."""
    ids = {name: i for i, name in enumerate(labels.names)}
    unknown = next((row for row, value in enumerate(values) if str(value) not in ids), None)
    if unknown is not None:
        raise DataError(
            f"{path}: {row_location(path, unknown)} has label {values[unknown]!r}, which {known_by} does not have; "
            f"its labels are {list(labels.names)}"
        )
    return [ids[str(value)] for value in values]


def encode(
    rows: datasets.Dataset, tokenizer: PreTrainedTokenizerBase, cfg: SentenceTaskConfig, key: str
) -> datasets.Dataset:
    """Token ids of each row, truncated to max_seq_length; `tokens_before_truncation` keeps the count."""
    pair = TEXT_PAIR in rows.column_names
    limit = cfg.max_seq_length

    def tokenize(batch: dict[str, list]) -> dict[str, list]:
        first, second = batch[TEXT], batch[TEXT_PAIR] if pair else None
        # Untruncated first, to count what truncation drops; only the few long rows are encoded twice.
        full = tokenizer(first, second, verbose=False, return_attention_mask=False)
        lengths = [len(ids) for ids in full["input_ids"]]
        long = [i for i, n in enumerate(lengths) if n > limit]
        if long:
            cut = tokenizer(
                [first[i] for i in long],
                [second[i] for i in long] if second is not None else None,
                truncation=True,
                max_length=limit,
                return_attention_mask=False,
            )
            for name in full:
                for j, i in enumerate(long):
                    full[name][i] = cut[name][j]
        out = {name: full[name] for name in full if name in MODEL_COLUMNS}
        out["tokens_before_truncation"] = lengths
        if LABEL in batch:
            out["labels"] = batch[LABEL]
        return out

    return rows.map(
        tokenize,
        batched=True,
        num_proc=map_processes(cfg, len(rows)),
        remove_columns=[c for c in (TEXT, TEXT_PAIR, LABEL) if c in rows.column_names],
        new_fingerprint=fingerprint(rows._fingerprint, key),
        desc="Tokenizing",
    )


def _as_checkpoint_labels(
    splits: SentenceSplits, labels: LabelSpace, checkpoint: CheckpointLabels
) -> tuple[SentenceSplits, LabelSpace]:
    """The splits with label ids renumbered to the checkpoint's, whose labels they take."""
    if checkpoint.regression or labels.is_regression:
        if checkpoint.regression != labels.is_regression:
            heads = ("a regression head", "labels") if checkpoint.regression else ("labels", "scores to regress")
            raise DataError(
                f"model.name_or_path={checkpoint.checkpoint!r} has {heads[0]}, but the data has {heads[1]}; "
                "evaluating (trainer.max_steps=0) needs a checkpoint trained for this task"
            )
        return splits, labels
    if checkpoint.placeholders:
        if len(checkpoint.names) != labels.num_labels:
            raise DataError(
                f"model.name_or_path={checkpoint.checkpoint!r} has {len(checkpoint.names)} labels, the data "
                f"{labels.num_labels}; evaluating (trainer.max_steps=0) needs a checkpoint trained for this task"
            )
        log.warning(
            "%s names its labels %s only: the data's labels %s are taken as its ids 0, 1, ... (sorted, as a plain "
            "Hugging Face script numbers them)", checkpoint.checkpoint, ", ".join(checkpoint.names[:3]),
            list(labels.names)[:5],
        )  # fmt: skip
        return splits, labels
    unknown = checkpoint.unknown(labels.names)
    if unknown:
        raise checkpoint.refuse(unknown, "the data")
    renumber = np.array([checkpoint.names.index(name) for name in labels.names], dtype=np.int64)

    def moved(values: Any) -> list:
        """Label ids to the checkpoint's; 0/1 vectors (multi-label) into the checkpoint's label order."""
        if not labels.multi_label:
            return renumber[np.asarray(values)].tolist()
        vectors = np.zeros((len(values), len(checkpoint.names)), dtype=np.float32)
        vectors[:, renumber] = np.asarray(values, dtype=np.float32)
        return vectors.tolist()

    def renumbered(rows: datasets.Dataset) -> datasets.Dataset:
        if LABEL not in rows.column_names:
            return rows
        return rows.map(lambda batch: {LABEL: moved(batch[LABEL])}, batched=True)

    splits = SentenceSplits(
        train=renumbered(splits.train),
        evaluation={name: renumbered(rows) for name, rows in splits.evaluation.items()},
        prediction=splits.prediction,
        skipped_rows=splits.skipped_rows,
    )
    return splits, LabelSpace(names=checkpoint.names, multi_label=labels.multi_label)


def split_stats(encoded: datasets.Dataset, labels: LabelSpace, max_seq_length: int) -> dict[str, Any]:
    """Examples, tokens, truncation and the label distribution of one split."""
    before = np.asarray(encoded["tokens_before_truncation"])
    stats: dict[str, Any] = {
        "examples": len(encoded),
        "mean_tokens": float(np.minimum(before, max_seq_length).mean()) if len(before) else 0.0,
        "truncated_examples": int((before > max_seq_length).sum()),
        "truncated_tokens": int(np.maximum(before - max_seq_length, 0).sum()),
    }
    if "labels" in encoded.column_names:
        values = np.asarray(encoded["labels"])
        if labels.is_regression:
            stats["label_mean"] = float(values.mean()) if len(values) else 0.0
        elif labels.multi_label:
            counts = values.sum(axis=0) if len(values) else np.zeros(labels.num_labels)
            stats["label_counts"] = {name: int(c) for name, c in zip(labels.names, counts, strict=True)}
            stats["examples_without_a_label"] = int((values.sum(axis=1) == 0).sum()) if len(values) else 0
        else:
            counts = np.bincount(values.astype(int), minlength=labels.num_labels)
            stats["label_counts"] = {name: int(c) for name, c in zip(labels.names, counts, strict=True)}
    return stats


def _short(value: Any) -> str:
    return f"{value:.1f}" if isinstance(value, float) else str(value)
