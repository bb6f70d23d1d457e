"""Long documents for sequence classification: a text longer than max_seq_length becomes overlapping windows
(`data.long_inputs=windows`), each trained on with the document's label (at most
`data.max_windows_per_document` per document), and the windows' logits are combined per document
(`data.window_aggregation`: their mean or their maximum) before the document's prediction and score.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

import datasets
import numpy as np
from transformers import PreTrainedTokenizerBase

from bertkit.core.batch import Gathered
from bertkit.core.errors import DataError
from bertkit.core.seeding import fingerprint
from bertkit.readers.glue_tsv import LABEL, TEXT, TEXT_PAIR
from bertkit.tasks.fine_tuning import windows_left_to_right

DOCUMENT, WINDOW = "document_index", "window_index"
"""Each window's document (its row in the split) and its place among that document's windows."""
MODEL_COLUMNS = ("input_ids", "token_type_ids", "attention_mask", "labels")


class LongInputs(StrEnum):
    """What happens to a text longer than data.max_seq_length."""

    truncate = "truncate"  # its end is cut off (and counted)
    windows = "windows"  # it becomes overlapping windows, combined per document


class WindowAggregation(StrEnum):
    """How the windows' logits become the document's."""

    mean = "mean"
    max = "max"


def encode(
    rows: datasets.Dataset, tokenizer: PreTrainedTokenizerBase, max_seq_length: int, stride: int, key: str
) -> datasets.Dataset:
    """Every window of every row: model inputs, the row's label, its document and window number."""
    if TEXT_PAIR in rows.column_names:
        raise DataError("data.long_inputs=windows reads one text per example; sentence pairs are truncated instead")
    tokenizer = windows_left_to_right(tokenizer)  # window 0 is a document's start, whatever side it truncates

    def tokenize(batch: dict[str, list], indices: list[int]) -> dict[str, list]:
        encoded = tokenizer(
            batch[TEXT], truncation=True, max_length=max_seq_length, stride=stride, return_overflowing_tokens=True
        )
        sources = encoded.pop("overflow_to_sample_mapping")
        out = {name: encoded[name] for name in MODEL_COLUMNS if name in encoded}
        out[DOCUMENT] = [indices[source] for source in sources]
        out[WINDOW] = [i - sources.index(source) for i, source in enumerate(sources)]
        if LABEL in batch:
            out["labels"] = [batch[LABEL][source] for source in sources]
        return out

    return rows.map(
        tokenize,
        batched=True,
        with_indices=True,
        remove_columns=rows.column_names,
        new_fingerprint=fingerprint(rows._fingerprint, key, "windows", stride),
        desc="Windows",
    )


def first_windows(encoded: datasets.Dataset, limit: int | None) -> datasets.Dataset:
    """Training windows: at most `limit` per document (its first ones), or all."""
    if limit is None:
        return encoded
    return encoded.filter(lambda window: window < limit, input_columns=WINDOW)


def per_document(gathered: Gathered, documents: np.ndarray, how: WindowAggregation) -> Gathered:
    """Window outputs -> one per document: logits combined, labels (the same on every window) the first's."""
    count = int(documents.max()) + 1 if len(documents) else 0
    logits = gathered["logits"].astype(np.float64)
    combined = np.full((count, logits.shape[1]), -np.inf if how == WindowAggregation.max else 0.0)
    if how == WindowAggregation.max:
        np.maximum.at(combined, documents, logits)
    else:
        np.add.at(combined, documents, logits)
        combined /= np.bincount(documents, minlength=count)[:, None]
    out: dict[str, Any] = {"logits": combined.astype(np.float32)}
    if "labels" in gathered:
        first = np.flatnonzero(np.r_[True, documents[1:] != documents[:-1]])
        out["labels"] = gathered["labels"][first]
    return out


def stats(encoded: datasets.Dataset) -> dict[str, Any]:
    """Documents, windows, and the tokens of windows after each document's first (what truncation would have
    dropped, plus the overlap and special tokens each window repeats)."""
    documents = np.asarray(encoded[DOCUMENT])
    windows = np.asarray(encoded[WINDOW])
    lengths = np.asarray([len(ids) for ids in encoded["input_ids"]])
    first = windows == 0
    return {
        "documents": int(first.sum()),
        "windows": len(encoded),
        "documents_split_into_windows": int(len(np.unique(documents[~first]))),
        "mean_tokens": float(lengths.mean()) if len(lengths) else 0.0,
        "tokens_in_later_windows": int(lengths[~first].sum()),
    }
