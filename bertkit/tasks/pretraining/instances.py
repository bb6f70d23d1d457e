"""Tokenized documents -> instances: the `datasets.map` machinery the objectives share.

Two shapes of instance: segment pairs (`[CLS] A [SEP] B [SEP]`, made document by document: NSP and SOP)
and packed text (`[CLS] sentences [SEP]`, contiguous sentences across documents: RoBERTa's FULL-SENTENCES).
Arrow in, Arrow out: builders slice token arrays and never turn a token into a Python object. With static
masks the masked inputs and labels are stored too.
"""

from __future__ import annotations

import random
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import datasets
import numpy as np
import pyarrow as pa
import torch

from bertkit.tasks.pretraining.config import PretrainCorpusConfig
from bertkit.tasks.pretraining.corpus import rows_per_batch
from bertkit.tasks.pretraining.documents import (
    TOKENIZED,
    TokenizedDocuments,
    concatenate,
    fresh_column,
    garbage_collection_paused,
    map_processes,
    stage_fingerprint,
    torch_single_threaded,
)
from bertkit.tasks.pretraining.masking import VocabularyTables, mask_row

_TOKENS_PER_BATCH = 4_000_000  # bytes of token ids (4 each) cut into instances at once

Instance = tuple[int, int, Any, int, int, int, int]
"""(a_start, a_end, b_tokens, b_start, b_end, label, truncated_tokens): segment A is tokens[a_start:a_end] of
the document, B is b_tokens[b_start:b_end], b_tokens None meaning the document's own."""

DocumentInstances = Callable[[list[int], int, TokenizedDocuments, PretrainCorpusConfig, random.Random], list[Instance]]
"""(sentence bounds, document index, all documents, config, the document's generator) -> its segment pairs;
the k-th sentence of the document is tokens[bounds[k]:bounds[k + 1]]."""


@dataclass(frozen=True, kw_only=True)
class BuildSettings:
    """What one split's instances are built with."""

    cfg: PretrainCorpusConfig
    tables: VocabularyTables
    cls_id: int
    sep_id: int
    static_masks: bool
    dupe_factor: int
    split: str


@dataclass
class _Built:
    """Instances laid end to end in rows (one per document, or per batch), with what each instance records."""

    rows: list[np.ndarray] = field(default_factory=list)
    masked: list[np.ndarray] = field(default_factory=list)
    lengths: list[int] = field(default_factory=list)
    labels: list[int] = field(default_factory=list)
    truncated: list[int] = field(default_factory=list)


class InstanceBuilder(ABC):
    """The `datasets.map` function: a batch of tokenized documents (an Arrow table) -> their instances."""

    pair_label: str | None = None
    """Column of the segment-pair label, if the instances have one."""

    def __init__(self, tokenized: datasets.Dataset, settings: BuildSettings) -> None:
        self.documents = tokenized
        self.settings = settings
        self.cls = np.array([settings.cls_id], dtype=np.int32)
        self.sep = np.array([settings.sep_id], dtype=np.int32)
        self.features = self._features()

    def _features(self) -> datasets.Features:
        features: dict[str, Any] = {"input_ids": datasets.List(datasets.Value("int32"))}
        if self.pair_label is not None:
            features[self.pair_label] = datasets.Value("int8")
        features["truncated_tokens"] = datasets.Value("int32")
        if self.settings.static_masks:
            features["labels"] = datasets.List(datasets.Value("int32"))
        return datasets.Features(features)

    def __call__(self, _batch: pa.Table, indices: list[int]) -> pa.Table:
        # The batch's documents (and random next segments) are read from a mapping of the tokenized cache
        # opened for this batch alone: the pages read stay resident only while the batch is built.
        # (`indices` are rows of the whole dataset, also under num_proc.)
        corpus = TokenizedDocuments(fresh_column(self.documents, TOKENIZED))
        with garbage_collection_paused(), torch_single_threaded():
            return self._table(self.instances(corpus, indices))

    @abstractmethod
    def instances(self, corpus: TokenizedDocuments, indices: list[int]) -> _Built:
        """The instances of the documents at `indices`."""

    def map_options(self) -> dict[str, Any]:
        """Batch size and processes of the map (part of what decides the instances for packed text)."""
        cfg = self.settings.cfg
        return {
            "batch_size": rows_per_batch(self.documents, _TOKENS_PER_BATCH, max(1, cfg.map_batch_size // 8)),
            "num_proc": map_processes(cfg, len(self.documents)),
        }

    def _add_row(self, built: _Built, row: np.ndarray, rng: random.Random) -> None:
        if self.settings.static_masks:
            generator = torch.Generator().manual_seed(rng.getrandbits(63))
            row, masked = mask_row(row, self.settings.cfg.masking, self.settings.tables, generator)
            built.masked.append(masked)
        built.rows.append(row)

    def _table(self, built: _Built) -> pa.Table:
        offsets = pa.array(np.concatenate([[0], np.cumsum(built.lengths, dtype=np.int64)]).astype(np.int32))
        columns: dict[str, pa.Array] = {"input_ids": pa.ListArray.from_arrays(offsets, concatenate(built.rows))}
        if self.pair_label is not None:
            columns[self.pair_label] = pa.array(built.labels, type=pa.int8())
        columns["truncated_tokens"] = pa.array(built.truncated, type=pa.int32())
        if self.settings.static_masks:
            columns["labels"] = pa.ListArray.from_arrays(offsets, concatenate(built.masked))
        return pa.Table.from_pydict(columns, schema=self.features.arrow_schema)


class SegmentPairs(InstanceBuilder):
    """`[CLS] A [SEP] B [SEP]` instances, document by document; each document (and copy) draws from its own
    seeded generator, so the instances do not depend on how many processes built them."""

    def __init__(
        self, tokenized: datasets.Dataset, settings: BuildSettings, pair_label: str | None, pairs: DocumentInstances
    ) -> None:
        self.pair_label = pair_label
        self.pairs = pairs
        super().__init__(tokenized, settings)

    def instances(self, corpus: TokenizedDocuments, indices: list[int]) -> _Built:
        settings, built = self.settings, _Built()
        for index in indices:
            tokens, bounds = corpus.document(index)
            bounds = bounds.tolist()
            for dupe in range(settings.dupe_factor):
                rng = random.Random(f"{settings.cfg.seed}/{settings.split}/{dupe}/{index}")
                instances = self.pairs(bounds, index, corpus, settings.cfg, rng)
                if not instances:
                    continue
                pieces: list[np.ndarray] = []
                for a_start, a_end, b_tokens, b_start, b_end, label, dropped in instances:
                    b_tokens = tokens if b_tokens is None else b_tokens
                    pieces += (self.cls, tokens[a_start:a_end], self.sep, b_tokens[b_start:b_end], self.sep)
                    built.lengths.append(a_end - a_start + b_end - b_start + 3)
                    built.labels.append(label)
                    built.truncated.append(dropped)
                self._add_row(built, np.concatenate(pieces), rng)
        return built


class PackedText(InstanceBuilder):
    """`[CLS] sentences [SEP]` instances: whole sentences, in corpus order, filling max_seq_length; a document
    boundary inside an instance is one more [SEP]. A sentence longer than an instance is split over several
    (nothing is truncated). Each map batch is packed on its own, in one process, so the instances do not
    depend on how many processes the other steps use."""

    def map_options(self) -> dict[str, Any]:
        cfg = self.settings.cfg
        return {"batch_size": rows_per_batch(self.documents, _TOKENS_PER_BATCH, cfg.map_batch_size), "num_proc": None}

    def instances(self, corpus: TokenizedDocuments, indices: list[int]) -> _Built:
        settings, built = self.settings, _Built()
        spans = [span for index in indices for span in self._sentences(corpus, index)]
        for dupe in range(settings.dupe_factor):
            rng = random.Random(f"{settings.cfg.seed}/{settings.split}/{dupe}/{indices[0]}")
            pieces: list[np.ndarray] = []
            for content in pack(spans, settings.cfg.max_seq_length - 2, self.sep):
                pieces += (self.cls, *content, self.sep)
                built.lengths.append(sum(len(piece) for piece in content) + 2)
                built.truncated.append(0)
            if pieces:
                self._add_row(built, np.concatenate(pieces), rng)
        return built

    @staticmethod
    def _sentences(corpus: TokenizedDocuments, index: int) -> list[tuple[int, np.ndarray]]:
        tokens, bounds = corpus.document(index)
        return [(index, tokens[start:end]) for start, end in zip(bounds[:-1], bounds[1:], strict=True)]


def pack(sentences: list[tuple[int, np.ndarray]], budget: int, separator: np.ndarray) -> list[list[np.ndarray]]:
    """Greedy packing of (document, tokens) sentences into contents of at most `budget` tokens; `separator`
    goes between sentences of different documents."""
    contents: list[list[np.ndarray]] = []
    current: list[np.ndarray] = []
    used, last_document = 0, None
    for document, tokens in sentences:
        gap = 1 if current and document != last_document else 0
        if current and used + gap + len(tokens) > budget:
            contents.append(current)
            current, used, gap = [], 0, 0
        while len(tokens) > budget:  # longer than a whole instance: it gets instances of its own
            contents.append([tokens[:budget]])
            tokens = tokens[budget:]
        if gap:
            current.append(separator)
        current.append(tokens)
        used += gap + len(tokens)
        last_document = document
    if current:
        contents.append(current)
    return contents


def truncate_seq_pair(length_a: int, length_b: int, max_tokens: int, rng: random.Random) -> tuple[int, int, int, int]:
    """Tokens to cut from (the front of A, its back, the front of B, its back) so that both fit.

    The original cuts one token at a time from the longer list (the second on a tie), from either end by a
    coin flip; noise it found helps. The counts that procedure ends with are computed here directly: the
    longer list is cut down to the shorter, the rest alternately, and the tokens cut at the front of each
    list are a binomial draw (one random bit per cut token) instead of a loop of coin flips.
    """
    excess = length_a + length_b - max_tokens
    if excess <= 0:
        return 0, 0, 0, 0
    gap = length_a - length_b
    cut_a, cut_b = min(excess, max(gap, 0)), min(excess, max(-gap, 0))
    rest = excess - cut_a - cut_b
    cut_a, cut_b = cut_a + rest // 2, cut_b + rest - rest // 2
    front_a = rng.getrandbits(cut_a).bit_count() if cut_a else 0
    front_b = rng.getrandbits(cut_b).bit_count() if cut_b else 0
    return front_a, cut_a - front_a, front_b, cut_b - front_b


def build_instances(builder: InstanceBuilder, key: str) -> datasets.Dataset:
    """Run the builder over all tokenized documents; cached under the data's key and the split's settings."""
    settings, tokenized = builder.settings, builder.documents
    instances = tokenized.with_format("arrow").map(
        builder,
        batched=True,
        with_indices=True,
        remove_columns=tokenized.column_names,
        features=builder.features,
        new_fingerprint=stage_fingerprint(
            "instances", tokenized._fingerprint, key, settings.split, settings.static_masks, settings.dupe_factor
        ),
        desc=f"Building {settings.split} instances",
        **builder.map_options(),
    )
    return instances.with_format(None)
