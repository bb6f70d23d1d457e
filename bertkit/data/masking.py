"""Masked-language-model corruption and the pretraining collator.

Masking follows google-research/bert: a fraction of the non-special tokens is chosen for prediction; of
those, 80% become [MASK], 10% a random token and 10% stay as they are (all configurable). With whole-word
masking the choice is made per word (a WordPiece token starting with "##" continues the word before it),
so all pieces of a word are chosen together or not at all.
"""

from __future__ import annotations

import torch
from transformers import PreTrainedTokenizerBase

from bertkit.config import MaskingConfig

IGNORE_INDEX = -100
"""Label of positions that are not predicted (PyTorch's cross-entropy default)."""


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


def mask_tokens(
    input_ids: torch.Tensor,
    maskable: torch.Tensor,
    cfg: MaskingConfig,
    tables: VocabularyTables,
    generator: torch.Generator,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Corrupt a [batch, length] id tensor; returns (inputs, labels), labels IGNORE_INDEX where unchosen."""
    draw = torch.rand(input_ids.shape, generator=generator)
    if cfg.whole_word:
        draw = draw.gather(1, _word_start_positions(input_ids, maskable, tables))
    chosen = (draw < cfg.mlm_probability) & maskable
    labels = torch.where(chosen, input_ids, IGNORE_INDEX)

    action = torch.rand(input_ids.shape, generator=generator)
    to_mask = chosen & (action < cfg.mask_replace_prob)
    to_random = chosen & ~to_mask & (action < cfg.mask_replace_prob + cfg.random_replace_prob)
    random_ids = torch.randint(tables.vocab_size, input_ids.shape, generator=generator)
    inputs = torch.where(to_mask, tables.mask_token_id, input_ids)
    inputs = torch.where(to_random, random_ids, inputs)
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

    Instances hold `input_ids` ([CLS] A [SEP] B [SEP], unpadded) and `next_sentence_label`. Instances that
    already carry `labels` (static masking) are only padded.
    """

    def __init__(
        self,
        tables: VocabularyTables,
        masking: MaskingConfig,
        seed: int,
        pad_to_multiple_of: int | None = 8,
    ) -> None:
        self.tables = tables
        self.masking = masking
        self.pad_to_multiple_of = pad_to_multiple_of
        self.generator = torch.Generator().manual_seed(seed)
        self._worker_seed: int | None = None

    def __call__(self, features: list[dict]) -> dict[str, torch.Tensor]:
        lengths = torch.tensor([len(f["input_ids"]) for f in features])
        width = int(lengths.max())
        if self.pad_to_multiple_of:
            width = -(-width // self.pad_to_multiple_of) * self.pad_to_multiple_of
        input_ids = torch.full((len(features), width), self.tables.pad_token_id, dtype=torch.long)
        for row, feature in enumerate(features):
            input_ids[row, : len(feature["input_ids"])] = torch.as_tensor(feature["input_ids"])
        positions = torch.arange(width).expand_as(input_ids)
        attention_mask = positions < lengths[:, None]
        first_sep = (input_ids == self.tables.sep_token_id).int().argmax(dim=1)
        token_type_ids = (positions > first_sep[:, None]) & attention_mask

        if "labels" in features[0]:
            labels = torch.full_like(input_ids, IGNORE_INDEX)
            for row, feature in enumerate(features):
                labels[row, : len(feature["labels"])] = torch.as_tensor(feature["labels"])
        else:
            maskable = attention_mask & ~self.tables.special[input_ids]
            input_ids, labels = mask_tokens(input_ids, maskable, self.masking, self.tables, self._generator())
        return {
            "input_ids": input_ids,
            "attention_mask": attention_mask.long(),
            "token_type_ids": token_type_ids.long(),
            "labels": labels,
            "next_sentence_label": torch.tensor([f["next_sentence_label"] for f in features]),
        }

    def _generator(self) -> torch.Generator:
        # DataLoader workers each hold a copy of this collator; without their own seeds they would all
        # draw the same masks. torch gives every worker a distinct seed derived from the loader's RNG.
        worker = torch.utils.data.get_worker_info()
        if worker is not None and worker.seed != self._worker_seed:
            self._worker_seed = worker.seed
            self.generator = torch.Generator().manual_seed(worker.seed % 2**63)
        return self.generator

    def state_dict(self) -> dict:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.generator.set_state(state["generator"])


def mask_instances(
    instances: list[list[int]], cfg: MaskingConfig, tables: VocabularyTables, generator: torch.Generator
) -> tuple[list[list[int]], list[list[int]]]:
    """Static masking of unpadded instances: (masked input ids, labels), one list per instance."""
    if not instances:
        return [], []
    lengths = [len(ids) for ids in instances]
    ids = torch.full((len(instances), max(lengths)), tables.pad_token_id, dtype=torch.long)
    for row, instance in enumerate(instances):
        ids[row, : lengths[row]] = torch.as_tensor(instance)
    maskable = (torch.arange(ids.shape[1]) < torch.tensor(lengths)[:, None]) & ~tables.special[ids]
    inputs, labels = mask_tokens(ids, maskable, cfg, tables, generator)
    return (
        [row[:n] for row, n in zip(inputs.tolist(), lengths, strict=True)],
        [row[:n] for row, n in zip(labels.tolist(), lengths, strict=True)],
    )
