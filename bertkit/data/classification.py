"""Sentence and sentence-pair tasks (GLUE, your own data): rows -> tokenized splits -> DataBundle.

The readers (`glue.py`, `custom.py`) bring each split as rows with the columns below; everything after
that is shared: tokenization with truncation counted per split, dynamic padding, what evaluation
gathers, and turning gathered outputs back into labels for prediction files.
"""

from __future__ import annotations

import csv
import io
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import datasets
import numpy as np
import torch
from transformers import PreTrainedTokenizerBase

from bertkit.config import SentenceTaskConfig
from bertkit.data.bundle import DataBundle, TaskKind, TaskSpec
from bertkit.data.caching import fingerprint, tokenizer_fingerprint
from bertkit.data.fine_tuning import DynamicPadding, first_rows

log = logging.getLogger(__name__)
_FORMAT_VERSION = 1  # bump when tokenization changes, to retire old caches

TEXT, TEXT_PAIR, LABEL, INDEX = "text", "text_pair", "label", "index"
"""Columns every reader produces: the text(s), the label id or value (absent when unlabeled), and the
example's id in its source (GLUE's `index` column, a row number, ...), used in prediction files."""
MODEL_COLUMNS = ("input_ids", "token_type_ids", "attention_mask", "labels")


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


@dataclass(frozen=True, kw_only=True)
class LabelSpace:
    """Label names by id, or none for regression."""

    names: tuple[str, ...] = ()

    @property
    def is_regression(self) -> bool:
        return not self.names

    @property
    def num_labels(self) -> int:
        return len(self.names) or 1


PredictionFiles = Callable[[dict[str, dict[str, np.ndarray]], dict[str, datasets.Dataset]], dict[str, str]]
"""(gathered outputs per split, the rows of each split) -> {file name: text}."""


def build(
    cfg: SentenceTaskConfig,
    splits: SentenceSplits,
    labels: LabelSpace,
    tokenizer: PreTrainedTokenizerBase,
    *,
    metric: str,
    metric_config: str,
    description: str,
    prediction_files: PredictionFiles,
) -> DataBundle:
    """Tokenize every split and hand the loop what it needs; statistics name truncated examples."""
    rows = {"train": first_rows(splits.train, cfg.max_train_samples)}
    rows |= {name: first_rows(ds, cfg.max_eval_samples) for name, ds in splits.evaluation.items()}
    prediction_rows = {name: first_rows(ds, cfg.max_eval_samples) for name, ds in splits.prediction.items()}
    key = fingerprint(_FORMAT_VERSION, tokenizer_fingerprint(tokenizer), cfg.max_seq_length)
    encoded = {name: encode(ds, tokenizer, cfg, key) for name, ds in (rows | prediction_rows).items()}
    stats = {name: split_stats(ds, labels, cfg.max_seq_length) for name, ds in encoded.items()}
    for name, count in splits.skipped_rows.items():
        if name in stats:
            stats[name]["skipped_malformed_rows"] = count
    for name, numbers in stats.items():
        log.info("%s: %s", name, ", ".join(f"{k}={_short(v)}" for k, v in numbers.items()))

    model_inputs = {
        name: ds.select_columns([c for c in MODEL_COLUMNS if c in ds.column_names]) for name, ds in encoded.items()
    }
    collate = DynamicPadding(tokenizer, cfg.pad_to_multiple_of, MODEL_COLUMNS)
    task = TaskSpec(
        kind=TaskKind.sequence_classification,
        vocab_size=len(tokenizer),
        pad_token_id=tokenizer.pad_token_id,
        max_seq_length=cfg.max_seq_length,
        num_labels=labels.num_labels,
        id2label=dict(enumerate(labels.names)),
        metric=metric,
        metric_config=metric_config,
    )
    all_rows = rows | prediction_rows
    return DataBundle(
        task=task,
        train=model_inputs["train"],
        evaluation={name: model_inputs[name] for name in splits.evaluation},
        prediction={name: model_inputs[name] for name in splits.prediction},
        collate_train=collate,
        collate_eval=collate,
        eval_outputs=classification_eval_outputs,
        count_tokens=lambda batch: batch["attention_mask"].sum(),
        stats=stats,
        description=description,
        prediction_files=lambda outputs: prediction_files(outputs, all_rows),
    )


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
        num_proc=cfg.num_proc if cfg.num_proc > 1 and len(rows) > 1000 else None,
        remove_columns=[c for c in (TEXT, TEXT_PAIR, LABEL) if c in rows.column_names],
        new_fingerprint=fingerprint(rows._fingerprint, key),
        desc="Tokenizing",
    )


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
        else:
            counts = np.bincount(values.astype(int), minlength=labels.num_labels)
            stats["label_counts"] = {name: int(c) for name, c in zip(labels.names, counts, strict=True)}
    return stats


def classification_eval_outputs(batch: dict[str, torch.Tensor], output: Any) -> dict[str, torch.Tensor]:
    """What to gather per example: the head's logits, and the label when the split has one."""
    gathered = {"logits": output.logits.float()}
    if "labels" in batch:
        gathered["labels"] = batch["labels"]
    return gathered


def predicted_values(logits: np.ndarray, labels: LabelSpace) -> list[Any]:
    """Label names (classification) or scores (regression) from gathered logits."""
    if labels.is_regression:
        return [float(v) for v in logits[:, 0]]
    return [labels.names[i] for i in logits.argmax(axis=-1)]


def tsv(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """Tab-separated text; fields that hold tabs, quotes or newlines are quoted."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter="\t", lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue()


def prediction_table(
    outputs: Mapping[str, np.ndarray], rows: datasets.Dataset, labels: LabelSpace
) -> tuple[list[str], list[list[Any]]]:
    """Header and rows (index, prediction[, label]) of one split's predictions."""
    predictions = predicted_values(outputs["logits"], labels)
    if "labels" in outputs:
        gold = outputs["labels"] if labels.is_regression else [labels.names[int(i)] for i in outputs["labels"]]
        return ["index", "prediction", "label"], [
            [i, p, g] for i, p, g in zip(rows[INDEX], predictions, gold, strict=True)
        ]
    return ["index", "prediction"], [[i, p] for i, p in zip(rows[INDEX], predictions, strict=True)]


def _short(value: Any) -> str:
    return f"{value:.1f}" if isinstance(value, float) else str(value)
