"""What every fine-tuning task shares: its common settings, the first rows of a split, and dynamic padding."""

from __future__ import annotations

import copy
import csv
import io
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import datasets
import torch
from transformers import DataCollatorForTokenClassification, DataCollatorWithPadding, PreTrainedTokenizerBase

from bertkit.core.batch import IGNORE_INDEX
from bertkit.core.schema import require, resumable

log = logging.getLogger(__name__)


class BadRows(StrEnum):
    """What to do with a row of an input file that does not have the expected shape."""

    error = "error"  # stop, naming the file and line
    skip = "skip"  # leave it out and report how many were skipped


@dataclass(kw_only=True, slots=True)
class FineTuningDataConfig:
    """Settings every fine-tuning data recipe has (GLUE, your own data, SQuAD, NER, multiple choice)."""

    pad_to_multiple_of: int | None = 8
    """Batches are padded to their longest example, rounded up to this (tensor cores like multiples of 8)."""
    max_train_samples: int | None = None
    """Use only the first N training examples (quick trials, debugging)."""
    max_eval_samples: int | None = None
    """Use only the first N examples of each evaluation and prediction split."""
    num_proc: int = resumable(1)
    """Worker processes for tokenization."""
    packing: bool = False
    """Run the encoder on rows that each hold several of the batch's sequences, attention confined to each
    (bertkit.packing): the same loss as padded batches with less work where they hold padding."""

    def __post_init__(self) -> None:
        require(
            self.pad_to_multiple_of is None or self.pad_to_multiple_of >= 1, "data.pad_to_multiple_of", "must be >= 1"
        )
        for key in ("max_train_samples", "max_eval_samples"):
            value = getattr(self, key)
            require(value is None or value >= 1, f"data.{key}", "must be >= 1")
        require(self.num_proc >= 1, "data.num_proc", "must be >= 1")


HEAVY_TRUNCATION = 0.1
"""A split with more than this fraction of its examples truncated gets a warning."""


def warn_if_truncated(split: str, truncated: int, total: int, what: str, setting: str) -> None:
    """A WARNING when much of a split was cut to fit, with the fraction and the setting that changes it."""
    if total and truncated / total > HEAVY_TRUNCATION:
        log.warning(
            "%s: %.0f%% of the %s (%d of %d) were longer than %s and were cut; raise it to keep more",
            split,
            100 * truncated / total,
            what,
            truncated,
            total,
            setting,
        )


def first_rows(dataset: datasets.Dataset, limit: int | None) -> datasets.Dataset:
    """The first `limit` rows (data.max_train_samples / max_eval_samples), or all of them."""
    return dataset if limit is None or limit >= len(dataset) else dataset.select(range(limit))


def map_processes(cfg: FineTuningDataConfig, rows: int) -> int | None:
    """Tokenization processes for a split: data.num_proc, once the split is big enough to be worth it."""
    return cfg.num_proc if cfg.num_proc > 1 and rows > 1000 else None


def padding_on_the_right(tokenizer: PreTrainedTokenizerBase) -> PreTrainedTokenizerBase:
    """The tokenizer, padding on the right whatever side it pads on: position i of a padded batch is token i of
    every example, which per-token outputs (tags, answer offsets) are read back by."""
    if tokenizer.padding_side == "right":
        return tokenizer
    right = copy.copy(tokenizer)
    right.padding_side = "right"
    return right


def windows_left_to_right(tokenizer: PreTrainedTokenizerBase) -> PreTrainedTokenizerBase:
    """The tokenizer, cutting long inputs into windows from their start whatever side it truncates on, so that
    windows (QA contexts, long sentences) are the same for every tokenizer."""
    if tokenizer.truncation_side == "right":
        return tokenizer
    right = copy.copy(tokenizer)
    right.truncation_side = "right"
    return right


class DynamicPadding:
    """Pads the model's inputs on the right to the batch's longest example, rounded up to a multiple; other
    columns are dropped. With per-token labels, those are padded too, with the ignored index."""

    def __init__(
        self,
        tokenizer: PreTrainedTokenizerBase,
        pad_to_multiple_of: int | None,
        columns: Sequence[str],
        token_labels: bool = False,
    ) -> None:
        tokenizer = padding_on_the_right(tokenizer)
        self.columns = frozenset(columns)
        self.pad: Any
        if token_labels:
            self.pad = DataCollatorForTokenClassification(
                tokenizer, pad_to_multiple_of=pad_to_multiple_of, label_pad_token_id=IGNORE_INDEX, return_tensors="pt"
            )
        else:
            self.pad = DataCollatorWithPadding(tokenizer, pad_to_multiple_of=pad_to_multiple_of, return_tensors="pt")

    def __call__(self, features: list[dict]) -> dict[str, torch.Tensor]:
        return dict(self.pad([{k: v for k, v in f.items() if k in self.columns} for f in features]))


def tsv(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """Tab-separated text; fields that hold tabs, quotes or newlines are quoted."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter="\t", lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue()
