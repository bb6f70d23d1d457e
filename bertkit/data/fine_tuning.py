"""Pieces every fine-tuning recipe shares: the first rows of a split, and dynamic padding of model inputs."""

from __future__ import annotations

from collections.abc import Sequence

import datasets
import torch
from transformers import DataCollatorForTokenClassification, DataCollatorWithPadding, PreTrainedTokenizerBase

from bertkit.data.masking import IGNORE_INDEX


def first_rows(dataset: datasets.Dataset, limit: int | None) -> datasets.Dataset:
    """The first `limit` rows (data.max_train_samples / max_eval_samples), or all of them."""
    return dataset if limit is None or limit >= len(dataset) else dataset.select(range(limit))


class DynamicPadding:
    """Pads the model's inputs to the batch's longest example, rounded up to a multiple; other columns are
    dropped. With per-token labels, those are padded too, with the ignored index."""

    def __init__(
        self,
        tokenizer: PreTrainedTokenizerBase,
        pad_to_multiple_of: int | None,
        columns: Sequence[str],
        token_labels: bool = False,
    ) -> None:
        self.columns = frozenset(columns)
        if token_labels:
            self.pad = DataCollatorForTokenClassification(
                tokenizer, pad_to_multiple_of=pad_to_multiple_of, label_pad_token_id=IGNORE_INDEX, return_tensors="pt"
            )
        else:
            self.pad = DataCollatorWithPadding(tokenizer, pad_to_multiple_of=pad_to_multiple_of, return_tensors="pt")

    def __call__(self, features: list[dict]) -> dict[str, torch.Tensor]:
        return dict(self.pad([{k: v for k, v in f.items() if k in self.columns} for f in features]))
