"""Documents -> held-out split -> sentences of token ids, and random access to them.

Each document is tokenized once (batched, multi-process `datasets.map`; the fast tokenizer behind a word
cache, `word_cache.py`). The objectives then cut the tokenized documents into instances (`instances.py`).
Both steps are cached under a fingerprint of the data config and the tokenizer, so a second run starts at once.
"""

from __future__ import annotations

import bisect
import gc
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from typing import Any

import datasets
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch
from transformers import PreTrainedTokenizerBase

from bertkit.core.errors import DataError
from bertkit.core.seeding import fingerprint, tokenizer_fingerprint
from bertkit.tasks.pretraining.config import MaskingMode, PretrainCorpusConfig
from bertkit.tasks.pretraining.corpus import SENTENCES, rows_per_batch
from bertkit.tasks.pretraining.masking import VocabularyTables
from bertkit.tasks.pretraining.word_cache import PlainEncoder

FORMAT_VERSION = 3  # bump when instance building changes, to retire old caches
_TEXT_PER_BATCH = 1_000_000  # bytes of sentences tokenized at once (a tokenizer's output is ~30x its text)
TOKENIZED = "sentence_ids"


def split_documents(
    documents: datasets.Dataset, cfg: PretrainCorpusConfig
) -> tuple[datasets.Dataset, datasets.Dataset]:
    """Hold out whole documents for evaluation (a seeded choice), so no held-out text is trained on."""
    total = len(documents)
    held_out = min(max(2, round(total * cfg.eval_fraction)), cfg.max_eval_documents)
    if total - held_out < 2:
        raise DataError(
            f"the corpus has {total} documents: holding out {held_out} for evaluation leaves fewer than the "
            "2 that next-sentence prediction needs; add documents (blank lines separate them)"
        )
    order = np.random.default_rng(cfg.seed).permutation(total)
    eval_indices = np.sort(order[:held_out])
    train_indices = np.sort(order[held_out:])
    return documents.select(train_indices), documents.select(eval_indices)


def tokenize_documents(
    documents: datasets.Dataset, tokenizer: PreTrainedTokenizerBase, cfg: PretrainCorpusConfig, key: str
) -> datasets.Dataset:
    """Each document's sentences as token ids (no special tokens); empty sentences are dropped."""

    encode = PlainEncoder(tokenizer)

    def tokenize(batch: dict[str, list]) -> pa.Table:
        return tokenized_table(encode, batch[SENTENCES])

    # Documents per batch from their size, so that a batch of books holds as much text as one of short
    # articles: memory does not grow with the corpus, nor with the length of its documents.
    batch = rows_per_batch(documents, _TEXT_PER_BATCH, cfg.map_batch_size)
    return documents.map(
        tokenize,
        batched=True,
        batch_size=batch,
        writer_batch_size=batch,
        num_proc=map_processes(cfg, len(documents)),
        remove_columns=documents.column_names,
        features=datasets.Features({TOKENIZED: datasets.List(datasets.List(datasets.Value("int32")))}),
        new_fingerprint=stage_fingerprint("tokenize", documents._fingerprint, key),
        desc="Tokenizing sentences",
    )


def tokenized_table(encode: PlainEncoder, documents: list[list[str]]) -> pa.Table:
    """Documents (lists of sentences) -> a one-column table of their sentences' token ids; empty sentences, and
    documents left without any, are dropped."""
    with garbage_collection_paused():
        ids, lengths = encode([sentence for document in documents for sentence in document])
    kept = lengths > 0
    sentence_offsets = np.concatenate([[0], np.cumsum(lengths[kept])]).astype(np.int32)
    sentences_per_document = np.fromiter(map(len, documents), dtype=np.int64, count=len(documents))
    document_of_sentence = np.repeat(np.arange(len(documents)), sentences_per_document)
    kept_per_document = np.bincount(document_of_sentence[kept], minlength=len(documents))
    # A document without tokens could never give a random next segment.
    kept_per_document = kept_per_document[kept_per_document > 0]
    document_offsets = np.concatenate([[0], np.cumsum(kept_per_document)]).astype(np.int32)
    sentences = pa.ListArray.from_arrays(sentence_offsets, ids)
    return pa.table({TOKENIZED: pa.ListArray.from_arrays(document_offsets, sentences)})


class TokenizedDocuments:
    """Random access to the documents of a tokenized column (list<list<int32>>): each one's tokens as a
    numpy view of the Arrow buffer, and where its sentences start and end in it. Nothing is copied; of a
    memory-mapped cache only the pages of what is read are touched."""

    def __init__(self, column: pa.ChunkedArray) -> None:
        self._chunks = [
            (
                chunk.offsets.to_numpy(),  # document -> its first sentence
                chunk.values.offsets.to_numpy(),  # sentence -> its first token
                chunk.values.values.to_numpy(),  # tokens
            )
            for chunk in column.chunks
        ]
        self._first_rows = np.cumsum([0, *(len(chunk) for chunk in column.chunks)]).tolist()

    def __len__(self) -> int:
        return self._first_rows[-1]

    def document(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """(tokens, bounds): the document's sentences are tokens[bounds[k]:bounds[k + 1]]."""
        documents, sentences, tokens = self._locate(index)
        return tokens, sentences[documents[0] : documents[1] + 1]

    def segment(self, index: int, start_fraction: float, min_tokens: int) -> tuple[np.ndarray, int, int]:
        """(tokens, start, end): whole sentences of a document from a random start until min_tokens are
        reached (or the document ends); a binary search, so a book-length document costs no more."""
        documents, sentences, tokens = self._locate(index)
        first, last = int(documents[0]), int(documents[1])  # last: one past the document's last sentence
        start = first + int(start_fraction * (last - first))
        target = sentences[start] + min_tokens
        end = min(last, start + 1 + int(np.searchsorted(sentences[start + 1 : last + 1], target)))
        return tokens, int(sentences[start]), int(sentences[end])

    def _locate(self, index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        chunk = bisect.bisect_right(self._first_rows, index) - 1
        documents, sentences, tokens = self._chunks[chunk]
        row = index - self._first_rows[chunk]
        return documents[row : row + 2], sentences, tokens


def concatenate(arrays: list[np.ndarray]) -> np.ndarray:
    return np.concatenate(arrays) if arrays else np.zeros(0, dtype=np.int32)


@contextmanager
def garbage_collection_paused() -> Iterator[None]:
    """Tokenizing and instance building allocate many small objects, none of them in a reference cycle; the
    cyclic collector, triggered by their allocation, would scan every live one again and again. Plain
    reference counting still frees them."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


@contextmanager
def torch_single_threaded() -> Iterator[None]:
    """Masks are drawn a document at a time, on tensors too small to split across threads: the extra threads
    would only spin waiting (a third more CPU time for no speed on 2 cores). The parallelism of corpus building
    is its processes (data.num_proc)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def fresh_column(dataset: datasets.Dataset, name: str) -> pa.ChunkedArray:
    """The column from a memory mapping of its own, released with it (a map() output has no indices mapping,
    so its cache files hold exactly its rows)."""
    if not dataset.cache_files:
        return dataset.data.column(name)
    tables = [pa.ipc.open_stream(pa.memory_map(f["filename"])).read_all() for f in dataset.cache_files]
    return pa.concat_tables(tables).column(name)


def summarize(
    documents: datasets.Dataset,
    tokenized: datasets.Dataset,
    instances: datasets.Dataset,
    label_share: tuple[str, str] | None = None,
) -> dict[str, Any]:
    """Counts of what was built, from the Arrow columns' lengths and offsets: no token is read, so the cache
    files are not paged in (map-built datasets have no indices mapping: their tables are their rows)."""
    sentences = tokens = 0
    for chunk in tokenized.data.column(TOKENIZED).chunks:
        sentence_lists = chunk.flatten()  # list<list<int>> -> the documents' sentences, by offsets
        sentences += len(sentence_lists)
        tokens += len(sentence_lists.flatten())
    instance_lengths = pc.list_value_length(instances.data.column("input_ids"))
    count = len(instances)
    stats: dict[str, Any] = {"documents": len(documents), "sentences": sentences, "tokens": tokens, "instances": count}
    if label_share is not None:  # (statistic, column): the share of instances whose 0/1 label there is 1
        name, column = label_share
        stats[name] = (pc.sum(instances.data.column(column)).as_py() or 0) / count if count else 0.0
    stats["mean_instance_tokens"] = (pc.sum(instance_lengths).as_py() or 0) / count if count else 0.0
    stats["truncated_tokens"] = pc.sum(instances.data.column("truncated_tokens")).as_py() or 0
    return stats


def merged_stats(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """The statistics of several shards' splits as one split's: counts add up, shares and means are weighted by
    what they are shares and means of (instances)."""
    merged: dict[str, Any] = {}
    for name in parts[0]:
        values = [part[name] for part in parts]
        if isinstance(values[0], float):
            weights = [part["instances"] for part in parts]
            merged[name] = sum(v * w for v, w in zip(values, weights, strict=True)) / max(1, sum(weights))
        else:
            merged[name] = sum(values)
    return merged


def map_processes(cfg: PretrainCorpusConfig, rows: int) -> int | None:
    return cfg.num_proc if cfg.num_proc > 1 and rows >= 2 * cfg.num_proc else None


def stage_fingerprint(*parts: Any) -> str:
    """Fingerprint of one stage's output (tokenized documents, instances of a split)."""
    return fingerprint(FORMAT_VERSION, *parts)


def tokens_key(tokenizer: PreTrainedTokenizerBase) -> str:
    """What tokenized documents depend on besides the documents themselves: the tokenizer alone (so every
    objective and instance setting shares one tokenization)."""
    return stage_fingerprint(tokenizer_fingerprint(tokenizer))


_NOT_SHAPING_INSTANCES = ("shard", "packing", "streaming", "stream_buffer")
"""Data settings that do not change the cached instances: which shard `prepare` builds, how batches are run."""


def cache_key(cfg: PretrainCorpusConfig, tokenizer: PreTrainedTokenizerBase) -> str:
    """Fingerprint of everything that shapes the instances: the data config and the tokenizer's vocabulary."""
    settings = {k: v for k, v in asdict(cfg).items() if k not in _NOT_SHAPING_INSTANCES}
    return stage_fingerprint(settings, tokenizer_fingerprint(tokenizer), str(MaskingMode(cfg.masking.mode)))


def majority_token(instances: datasets.Dataset, tables: VocabularyTables, sample: int = 20_000) -> int:
    """The most frequent non-special token in (a prefix of) the training instances: the trivial
    baseline that always predicts it sets the floor MLM accuracy must beat."""
    # The arrow format slices the rows themselves (a select()'s .data would be the whole table).
    column = instances.with_format("arrow")[: min(sample, len(instances))]["input_ids"]
    ids = pc.list_flatten(column).to_numpy()
    counts = np.bincount(ids, minlength=tables.vocab_size)
    counts[tables.special.numpy()] = 0
    return int(counts.argmax())
