"""Masked-language-model corruption and the pretraining collator.

Masking follows google-research/bert: a fraction of the non-special tokens is chosen for prediction; of
those, 80% become [MASK], 10% a random token and 10% stay as they are (all configurable). With whole-word
masking the choice is made per word (a WordPiece token starting with "##" continues the word before it),
so all pieces of a word are chosen together or not at all.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from transformers import PreTrainedTokenizerBase

from bertkit.core.batch import EPOCH, EXAMPLE_INDEX, IGNORE_INDEX
from bertkit.core.seeding import stable_seed
from bertkit.tasks.pretraining.config import MaskingConfig


class VocabularyTables:
    """Per-token-id lookups, so masking is vectorised instead of a Python loop over tokens."""

    def __init__(self, tokenizer: PreTrainedTokenizerBase) -> None:
        size = len(tokenizer)
        self.vocab_size = size
        self.mask_token_id = tokenizer.mask_token_id
        self.pad_token_id = tokenizer.pad_token_id
        self.sep_token_id = tokenizer.sep_token_id
        self.special = torch.zeros(size, dtype=torch.bool)
        self.special[list(tokenizer.all_special_ids)] = True
        pieces = tokenizer.convert_ids_to_tokens(list(range(size)))
        self.word_start = torch.tensor([not piece.startswith("##") for piece in pieces], dtype=torch.bool)


@dataclass(frozen=True)
class Draws:
    """The uniform numbers one masking pass consumes, one of each per position."""

    selection: torch.Tensor
    """Chooses the position for prediction when below mlm_probability."""
    action: torch.Tensor
    """Decides [MASK], random token or kept."""
    random_ids: torch.Tensor
    """The replacement token when it is a random one."""


def draws_from(generator: torch.Generator, shape: tuple[int, ...], vocab_size: int) -> Draws:
    """All draws from one generator, in one go (static masking: one generator per document)."""
    selection = torch.rand(shape, generator=generator)
    action = torch.rand(shape, generator=generator)
    return Draws(selection, action, torch.randint(vocab_size, shape, generator=generator))


def keyed_draws(seeds: list[int], lengths: list[int], width: int, vocab_size: int) -> Draws:
    """Each row's draws from its own seeded generator, as many as the row has tokens: a row's masks depend
    on its seed alone, not on the batch it lands in, how it is padded, or what was drawn before."""
    selection = torch.ones(len(seeds), width)  # padding: never below mlm_probability
    action = torch.ones(len(seeds), width)
    random_ids = torch.zeros(len(seeds), width, dtype=torch.long)
    for row, (seed, length) in enumerate(zip(seeds, lengths, strict=True)):
        generator = torch.Generator().manual_seed(seed)
        selection[row, :length] = torch.rand(length, generator=generator)
        action[row, :length] = torch.rand(length, generator=generator)
        random_ids[row, :length] = torch.randint(vocab_size, (length,), generator=generator)
    return Draws(selection, action, random_ids)


def mask_tokens(
    input_ids: torch.Tensor,
    maskable: torch.Tensor,
    cfg: MaskingConfig,
    tables: VocabularyTables,
    draws: Draws,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Corrupt a [batch, length] id tensor; returns (inputs, labels), labels IGNORE_INDEX where unchosen."""
    draw = draws.selection
    if cfg.whole_word:
        draw = draw.gather(1, _word_start_positions(input_ids, maskable, tables))
    chosen = (draw < cfg.mlm_probability) & maskable
    labels = torch.where(chosen, input_ids, IGNORE_INDEX)

    to_mask = chosen & (draws.action < cfg.mask_replace_prob)
    to_random = chosen & ~to_mask & (draws.action < cfg.mask_replace_prob + cfg.random_replace_prob)
    inputs = torch.where(to_mask, tables.mask_token_id, input_ids)
    inputs = torch.where(to_random, draws.random_ids, inputs)
    return inputs, labels


def _word_start_positions(input_ids: torch.Tensor, maskable: torch.Tensor, tables: VocabularyTables) -> torch.Tensor:
    """For each position, the position where its word starts (a piece after a special token starts one)."""
    after_unmaskable = torch.ones_like(maskable)
    after_unmaskable[:, 1:] = ~maskable[:, :-1]
    starts = ~maskable | tables.word_start[input_ids] | after_unmaskable
    positions = torch.arange(input_ids.shape[1]).expand_as(input_ids)
    return torch.where(starts, positions, 0).cummax(dim=1).values


class PretrainingCollator:
    """Pads instances into a batch, derives segment ids, and masks tokens afresh for every batch.

    Instances hold `input_ids` (unpadded: [CLS] A [SEP] B [SEP] for segment pairs, [CLS] text [SEP] for
    packed text) and, for a second task, its label in column `pair_label` (passed to the model as
    `next_sentence_label`, BertForPreTraining's name for it). Instances that already carry `labels` (static
    masking) are only padded. Training examples also carry their index and the epoch (the trainer adds them):
    each one's masks are then drawn from a generator seeded by (seed, epoch, index), so they are the same
    whatever batch, worker or process handles the example, and a resumed run masks exactly as the
    uninterrupted one did. Without them, masks come from one generator.
    """

    def __init__(
        self,
        tables: VocabularyTables,
        masking: MaskingConfig,
        seed: int,
        pad_to_multiple_of: int | None = 8,
        pair_label: str | None = "next_sentence_label",
        token_types: bool = True,
    ) -> None:
        self.tables = tables
        self.masking = masking
        self.seed = seed
        self.pad_to_multiple_of = pad_to_multiple_of
        self.pair_label = pair_label
        """Column of the segment-pair label; None: single segments (all token type 0)."""
        self.token_types = token_types
        """Batches carry token_type_ids (False for a model without type embeddings, e.g. ModernBERT)."""
        self.generator = torch.Generator().manual_seed(seed)

    def __call__(self, features: list[dict]) -> dict[str, torch.Tensor]:
        lengths = [len(f["input_ids"]) for f in features]
        input_ids, attention_mask = self._padded(features, lengths)
        batch = {"attention_mask": attention_mask.long()}
        if self.token_types:
            batch["token_type_ids"] = self._segments(input_ids, attention_mask)
        if "labels" in features[0]:
            labels = torch.full_like(input_ids, IGNORE_INDEX)
            for row, feature in enumerate(features):
                labels[row, : len(feature["labels"])] = torch.as_tensor(feature["labels"])
        else:
            input_ids, labels = self._masked(features, input_ids, attention_mask, lengths)
        batch = {"input_ids": input_ids, **batch, "labels": labels}
        if self.pair_label is not None:
            batch["next_sentence_label"] = torch.tensor([f[self.pair_label] for f in features])
        return batch

    def _padded(self, features: list[dict], lengths: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        width = max(lengths)
        if self.pad_to_multiple_of:
            width = -(-width // self.pad_to_multiple_of) * self.pad_to_multiple_of
        input_ids = torch.full((len(features), width), self.tables.pad_token_id, dtype=torch.long)
        for row, feature in enumerate(features):
            input_ids[row, : lengths[row]] = torch.as_tensor(feature["input_ids"])
        return input_ids, torch.arange(width).expand_as(input_ids) < torch.tensor(lengths)[:, None]

    def _segments(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Token type 1 from after the first [SEP] on, for segment pairs; packed text is all type 0 (its
        [SEP]s between documents start no second segment)."""
        if self.pair_label is None:
            return torch.zeros_like(input_ids)
        positions = torch.arange(input_ids.shape[1]).expand_as(input_ids)
        first_sep = (input_ids == self.tables.sep_token_id).int().argmax(dim=1)
        return ((positions > first_sep[:, None]) & attention_mask).long()

    def _masked(
        self, features: list[dict], input_ids: torch.Tensor, attention_mask: torch.Tensor, lengths: list[int]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        maskable = attention_mask & ~self.tables.special[input_ids]
        if EXAMPLE_INDEX in features[0]:
            seeds = [stable_seed(self.seed, f[EPOCH], f[EXAMPLE_INDEX]) for f in features]
            draws = keyed_draws(seeds, lengths, input_ids.shape[1], self.tables.vocab_size)
        else:
            draws = draws_from(self.generator, tuple(input_ids.shape), self.tables.vocab_size)
        return mask_tokens(input_ids, maskable, self.masking, self.tables, draws)


def mask_row(
    ids: np.ndarray, cfg: MaskingConfig, tables: VocabularyTables, generator: torch.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Static masking of unpadded instances laid end to end in one row: (masked ids, labels), int32.

    Each instance starts with [CLS] and ends with [SEP], which are never chosen and end any whole word, so
    the row masks exactly as its instances would one by one, with one tensor operation per step instead of
    one per instance."""
    row = torch.from_numpy(ids.astype(np.int64))[None]
    inputs, labels = mask_tokens(
        row, ~tables.special[row], cfg, tables, draws_from(generator, tuple(row.shape), tables.vocab_size)
    )
    return inputs[0].numpy().astype(np.int32), labels[0].numpy().astype(np.int32)
