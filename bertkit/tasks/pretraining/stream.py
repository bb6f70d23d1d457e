"""data.streaming: pretraining instances cut from the corpus as it is read, a block of documents at a time.

Each process reads its own shard of the document stream (datasets' `split_dataset_by_node`: whole files where
their number divides among the processes, otherwise every n-th document). It takes `data.stream_buffer`
documents at a time (a block), tokenizes them, cuts them into instances with the objective's builder (a random
next segment comes from another document of the block), shuffles the block's instances and yields them. Only
one block is held, whatever the size of the corpus.

A block's instances, their order and their masks are functions of (seed, process, epoch, block), not of what
was read before. Every instance carries its position: the epoch, the block, how many of the block's instances
have been yielded, and the state of the document stream where the block starts. Resuming from the position of
the last instance trained on reloads that state (datasets skips what came before it), rebuilds the block and
continues after the instance: a resumed run sees the batches an uninterrupted one would.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import datasets
import numpy as np
import pyarrow as pa
import torch
from datasets.distributed import split_dataset_by_node
from transformers import PreTrainedTokenizerBase

from bertkit.core.batch import EPOCH, EXAMPLE_INDEX, STREAM_POSITION, Batch
from bertkit.core.errors import DataError
from bertkit.core.seeding import fingerprint, stable_seed
from bertkit.tasks.pretraining.config import MaskingMode, PretrainCorpusConfig
from bertkit.tasks.pretraining.corpus import SENTENCES
from bertkit.tasks.pretraining.documents import tokenized_table
from bertkit.tasks.pretraining.instances import BuildSettings, InstanceBuilder
from bertkit.tasks.pretraining.masking import VocabularyTables
from bertkit.tasks.pretraining.word_cache import PlainEncoder

log = logging.getLogger(__name__)


def document_key(document: dict[str, Any]) -> str:
    """Identifies a document by its text: held-out documents are recognised wherever a shard meets them."""
    return fingerprint(document[SENTENCES])


@dataclass
class BlockBuilder:
    """A block of documents -> its instances, as an Arrow table (the objective's builder on the block alone)."""

    cfg: PretrainCorpusConfig
    tokenizer: PreTrainedTokenizerBase
    make_builder: Callable[[datasets.Dataset, BuildSettings], InstanceBuilder]
    tables: VocabularyTables
    encode: PlainEncoder = field(init=False)
    """One encoder for every block: its word cache fills once (a data loader's worker builds its own)."""

    def __post_init__(self) -> None:
        self.encode = PlainEncoder(self.tokenizer)

    def __call__(self, documents: list[dict[str, Any]], block: str) -> pa.Table:
        table = tokenized_table(self.encode, [document[SENTENCES] for document in documents])
        settings = BuildSettings(
            cfg=self.cfg,
            tables=self.tables,
            cls_id=self.tokenizer.cls_token_id,
            sep_id=self.tokenizer.sep_token_id,
            static_masks=self.cfg.masking.mode == MaskingMode.static,
            dupe_factor=self.cfg.dupe_factor,
            split=f"stream/{block}",  # the builder's generators are keyed by it: each block draws its own
        )
        builder = self.make_builder(datasets.Dataset(datasets.table.InMemoryTable(table)), settings)
        if table.num_rows < 2:  # documents without any token are dropped: too few left to draw a next one from
            return builder.features.arrow_schema.empty_table()
        return builder(table, list(range(table.num_rows)))


class InstanceStream(torch.utils.data.IterableDataset):
    """The training instances of one process's shard, block by block, forever (a new epoch at the shard's end).
    Before `for_process` it is the whole stream, which only hands out shards."""

    def __init__(
        self,
        documents: datasets.IterableDataset,
        build_block: BlockBuilder,
        held_out: frozenset[str],
        seed: int | None = None,
        process: int | None = None,
    ) -> None:
        self.documents, self.build_block, self.held_out = documents, build_block, held_out
        self.seed, self.process = seed, process
        self.block_documents = build_block.cfg.stream_buffer
        self.start: dict[str, Any] = {"epoch": 0, "block": 0, "consumed": 0, "documents": None}

    def for_process(self, index: int, count: int, seed: int) -> InstanceStream:
        shard = split_dataset_by_node(self.documents, rank=index, world_size=count) if count > 1 else self.documents
        return InstanceStream(shard, self.build_block, self.held_out, seed, process=index)

    def resume_from(self, position: dict[str, Any]) -> None:
        self.start = dict(position)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        assert self.process is not None, "iterate the stream of one process (for_process)"
        start = self.start
        epoch, first_block, skip, state = start["epoch"], start["block"], start["consumed"], start["documents"]
        while True:
            whole_epoch, yielded = state is None and skip == 0, False
            for block, block_state, documents in self._blocks(first_block, state):
                position = {"epoch": epoch, "block": block, "documents": block_state}
                for example in self._block_examples(documents, position, skip):
                    yielded = True
                    yield example
                skip = 0
            if whole_epoch and not yielded:
                raise DataError(
                    f"process {self.process}'s shard of the corpus gives no training instances: it holds fewer than "
                    "2 documents with text besides the held-out ones; use fewer processes, more documents or a "
                    "smaller data.max_eval_documents"
                )
            epoch, first_block, skip, state = epoch + 1, 0, 0, None

    def _block_examples(
        self, documents: list[dict[str, Any]], position: dict[str, Any], skip: int
    ) -> Iterator[dict[str, Any]]:
        """The block's instances in their shuffled order, after the first `skip`, each with its position."""
        epoch, block = position["epoch"], position["block"]
        table = self.build_block(documents, f"{self.process}/{epoch}/{block}")
        documents.clear()  # its text is not needed while its instances are trained on, and the next block is read
        order = np.random.default_rng(stable_seed(self.seed, self.process, epoch, block)).permutation(table.num_rows)
        row = _row_reader(table)
        for consumed in range(skip + 1, len(order) + 1):
            yield row(int(order[consumed - 1])) | {
                EXAMPLE_INDEX: f"{self.process}/{block}/{consumed}",
                EPOCH: epoch,
                STREAM_POSITION: position | {"consumed": consumed},
            }

    def _blocks(
        self, first_block: int, state: dict[str, Any] | None
    ) -> Iterator[tuple[int, dict[str, Any] | None, list[dict[str, Any]]]]:
        """(block, the stream's state where it starts, its documents) from `first_block` on, to the end of the
        shard; the last block may be shorter, and is left out with fewer than two documents. The shard is read in
        the same order every epoch (datasets' epoch would reshuffle which files each process reads)."""
        self.documents.load_state_dict(state)  # None: from the start
        block, block_state, documents = first_block, state, []
        for document in self.documents:
            if document_key(document) in self.held_out:
                continue
            documents.append(document)
            if len(documents) == self.block_documents:
                next_state = self.documents.state_dict()
                yield block, block_state, documents
                block, block_state, documents = block + 1, next_state, []
        if len(documents) >= 2:
            yield block, block_state, documents
        elif documents:
            log.debug("process %s: the shard's last document is left out (no other to pair it with)", self.process)


def _row_reader(table: pa.Table) -> Callable[[int], dict[str, Any]]:
    """Row i of an instance table as the collators read examples: token lists as numpy arrays, labels as ints."""
    lists: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    scalars: dict[str, list[Any]] = {}
    for name in table.column_names:
        column = table.column(name).combine_chunks()
        if pa.types.is_list(column.type):
            lists[name] = (column.offsets.to_numpy(), column.values.to_numpy())
        else:
            scalars[name] = column.to_pylist()

    def row(index: int) -> dict[str, Any]:
        example: dict[str, Any] = {name: values[index] for name, values in scalars.items()}
        for name, (offsets, values) in lists.items():
            example[name] = values[offsets[index] : offsets[index + 1]].copy()  # Arrow's buffers are read-only
        return example

    return row


@dataclass(frozen=True)
class PositionCarrying:
    """A collator for streamed examples: the task's collator on the examples, and the position of the last one."""

    collate: Callable[[list[dict[str, Any]]], Batch]

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, Any]:
        batch: dict[str, Any] = self.collate([{k: v for k, v in f.items() if k != STREAM_POSITION} for f in features])
        batch[STREAM_POSITION] = features[-1][STREAM_POSITION]
        return batch
