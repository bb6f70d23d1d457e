"""Fill-mask with a pretrained model (`bertkit predict`): texts holding the tokenizer's mask token -> the k most
probable tokens for each mask, as the transformers fill-mask pipeline ranks them (softmax over the vocabulary)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import datasets
import numpy as np
import torch
from transformers import PreTrainedTokenizerBase

from bertkit.core.batch import Batch, Gathered
from bertkit.core.errors import DataError
from bertkit.readers.files import read_table_file, row_location, text_lines
from bertkit.tasks.base import Prediction
from bertkit.tasks.fine_tuning import DynamicPadding, tsv

TEXT, INDEX = "text", "index"
MODEL_COLUMNS = ("input_ids", "token_type_ids", "attention_mask")
Filled = list[list[list[tuple[int, float]]]]
"""Per text, per mask (in order), the top k (token id, probability)."""


class FillMask:
    """Reads the texts, and turns the model's vocabulary scores at the masks into ranked tokens."""

    def __init__(self, tokenizer: PreTrainedTokenizerBase, top_k: int, max_seq_length: int) -> None:
        if tokenizer.mask_token is None:
            raise DataError("the model's tokenizer has no mask token, so it cannot fill masks")
        self.tokenizer, self.top_k, self.max_seq_length = tokenizer, top_k, max_seq_length
        self.rows: datasets.Dataset

    def prediction(self, path: str, text_column: str, cache_dir: Path) -> Prediction:
        self.rows = _read(path, text_column, str(cache_dir / "datasets"))
        mask = self.tokenizer.mask_token
        encoded = self.tokenizer(list(self.rows[TEXT]), truncation=True, max_length=self.max_seq_length)
        for row, ids in enumerate(encoded["input_ids"]):
            if self.tokenizer.mask_token_id not in ids:
                text_file = Path(path).suffix.lower() == ".txt"
                where = f"line {self.rows[INDEX][row]}" if text_file else row_location(path, row)
                cut = mask in self.rows[TEXT][row]
                reason = f"its {mask} lies beyond data.max_seq_length={self.max_seq_length}" if cut else f"no {mask}"
                raise DataError(f"{path}: {where} has {reason} to fill")
        inputs = datasets.Dataset.from_dict({name: encoded[name] for name in MODEL_COLUMNS if name in encoded})
        return Prediction(
            inputs=inputs,
            collate=DynamicPadding(self.tokenizer, 8, MODEL_COLUMNS),
            examples=len(self.rows),
            gather=self.gather,
            decode=self.decode,
            files=self.files,
            records=self.records,
        )

    def gather(self, batch: Batch, output: Any) -> dict[str, torch.Tensor]:
        """The top k tokens and probabilities at every position; -1 as the token where there is no mask."""
        logits = output.logits if hasattr(output, "logits") else output.prediction_logits
        probabilities, tokens = logits.float().softmax(dim=-1).topk(min(self.top_k, logits.shape[-1]), dim=-1)
        tokens = tokens.masked_fill((batch["input_ids"] != self.tokenizer.mask_token_id).unsqueeze(-1), -1)
        return {"tokens": tokens, "probabilities": probabilities}

    def decode(self, gathered: Gathered) -> Filled:
        filled = []
        for tokens, probabilities in zip(gathered["tokens"], gathered["probabilities"], strict=True):
            masks = np.flatnonzero(tokens[:, 0] >= 0)
            filled.append([list(zip(tokens[m].tolist(), probabilities[m].tolist(), strict=True)) for m in masks])
        return filled

    def records(self, filled: Filled) -> list[dict[str, Any]]:
        """index, text, and per mask the top k {token_str, token, score}."""
        return [
            {INDEX: index, TEXT: text, "masks": [[self._token(t, p) for t, p in ranked] for ranked in masks]}
            for index, text, masks in zip(self.rows[INDEX], self.rows[TEXT], filled, strict=True)
        ]

    def files(self, filled: Filled) -> dict[str, str]:
        """A TSV: index, mask (1-based, in the text's order), rank, token, score."""
        table = [
            [index, mask, rank, self.tokenizer.convert_ids_to_tokens(token), f"{score:.6f}"]
            for index, masks in zip(self.rows[INDEX], filled, strict=True)
            for mask, ranked in enumerate(masks, 1)
            for rank, (token, score) in enumerate(ranked, 1)
        ]
        return {"fill_mask.tsv": tsv([INDEX, "mask", "rank", "token", "score"], table)}

    def _token(self, token: int, score: float) -> dict[str, Any]:
        return {"token_str": self.tokenizer.decode([token]), "token": token, "score": score}


def _read(path: str, text_column: str, datasets_cache: str) -> datasets.Dataset:
    """Texts with their index: a .txt file's non-blank lines (the line number), or a table's `text_column`."""
    if Path(path).suffix.lower() == ".txt":
        lines = text_lines(path, "INPUT")
        return datasets.Dataset.from_dict({TEXT: [t for _, t in lines], INDEX: [n for n, _ in lines]})
    rows = read_table_file(path, "INPUT", datasets_cache)
    if text_column not in rows.column_names:
        columns = rows.column_names
        raise DataError(f"{path}: no column {text_column!r} (data.text_column=...); the columns are {columns}")
    texts = rows[text_column]
    empty = next((i for i, text in enumerate(texts) if not isinstance(text, str) or not text.strip()), None)
    if empty is not None:
        raise DataError(f"{path}: {row_location(path, empty)} has no text in column {text_column!r}")
    return datasets.Dataset.from_dict({TEXT: texts, INDEX: [str(i) for i in range(len(texts))]})
