"""Documents -> NSP sentence-pair instances, with google-research/bert's `create_pretraining_data` semantics.

Each document is tokenized once (batched, multi-process `datasets.map`; the fast tokenizer behind a word
cache, `word_cache.py`); then every document is cut into instances: sentences are gathered into a chunk
until it reaches the target length (`max_seq_length - 3`, or with `short_seq_prob` a shorter random
target); a random split point makes segment A; half the time segment B is the rest of the chunk (IsNext),
otherwise B is drawn from a random place in another document and the unused sentences of the chunk are
put back for the next instance. `truncate_seq_pair` trims the longer segment from a random end until the
pair fits. One deliberate departure: a one-sentence chunk draws the NSP coin like any other chunk (see
`create_instances`), which keeps NSP balanced at 50% where the original drifts towards RandomNext.

The randomness of each document comes from its own seeded generator, so the instances do not depend on
how many processes built them, and the result is cached under a fingerprint of the data config and the
tokenizer, so a second run starts at once.
"""

from __future__ import annotations

import bisect
import gc
import logging
import random
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any

import datasets
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch
from transformers import PreTrainedTokenizerBase

from bertkit.config import CorpusSource, MaskingMode, PretrainCorpusConfig
from bertkit.data.bundle import DataBundle, TaskKind, TaskSpec
from bertkit.data.caching import fingerprint, tokenizer_fingerprint
from bertkit.data.corpus import SENTENCES, load_documents, rows_per_batch
from bertkit.data.masking import IGNORE_INDEX, PretrainingCollator, VocabularyTables, mask_row
from bertkit.data.word_cache import PlainEncoder
from bertkit.errors import DataError

log = logging.getLogger(__name__)
_FORMAT_VERSION = 3  # bump when instance building changes, to retire old caches
_TEXT_PER_BATCH = 1_000_000  # bytes of sentences tokenized at once (a tokenizer's output is ~30x its text)
_TOKENS_PER_BATCH = 4_000_000  # bytes of token ids (4 each) cut into instances at once
IS_NEXT, RANDOM_NEXT = 0, 1  # BertForPreTraining's next_sentence_label convention

TOKENIZED = "sentence_ids"
INSTANCE_FEATURES = {
    "input_ids": datasets.List(datasets.Value("int32")),
    "next_sentence_label": datasets.Value("int8"),
    "truncated_tokens": datasets.Value("int32"),
}


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
        documents = batch[SENTENCES]
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

    # Documents per batch from their size, so that a batch of books holds as much text as one of short
    # articles: memory does not grow with the corpus, nor with the length of its documents.
    batch = rows_per_batch(documents, _TEXT_PER_BATCH, cfg.map_batch_size)
    return documents.map(
        tokenize,
        batched=True,
        batch_size=batch,
        writer_batch_size=batch,
        num_proc=_num_proc(cfg, len(documents)),
        remove_columns=documents.column_names,
        features=datasets.Features({TOKENIZED: datasets.List(datasets.List(datasets.Value("int32")))}),
        new_fingerprint=_fingerprint("tokenize", documents._fingerprint, key),
        desc="Tokenizing sentences",
    )


def build_instances(
    tokenized: datasets.Dataset,
    cfg: PretrainCorpusConfig,
    tables: VocabularyTables,
    key: str,
    *,
    cls_id: int,
    sep_id: int,
    static_masks: bool,
    dupe_factor: int,
    split: str,
) -> datasets.Dataset:
    """NSP instances from tokenized documents; with static_masks, masked inputs and labels are stored."""
    features = dict(INSTANCE_FEATURES)
    if static_masks:
        features["labels"] = datasets.List(datasets.Value("int32"))
    features = datasets.Features(features)
    builder = _InstanceBuilder(tokenized, cfg, tables, cls_id, sep_id, static_masks, dupe_factor, split, features)
    # Arrow in, Arrow out: the builder slices token arrays and never turns a token into a Python object.
    instances = tokenized.with_format("arrow").map(
        builder,
        batched=True,
        with_indices=True,
        batch_size=rows_per_batch(tokenized, _TOKENS_PER_BATCH, max(1, cfg.map_batch_size // 8)),
        num_proc=_num_proc(cfg, len(tokenized)),
        remove_columns=tokenized.column_names,
        features=features,
        new_fingerprint=_fingerprint("instances", tokenized._fingerprint, key, split, static_masks, dupe_factor),
        desc=f"Building {split} instances",
    )
    return instances.with_format(None)


class _InstanceBuilder:
    """The `datasets.map` function: a batch of tokenized documents (an Arrow table) -> their instances."""

    def __init__(
        self,
        tokenized: datasets.Dataset,
        cfg: PretrainCorpusConfig,
        tables: VocabularyTables,
        cls_id: int,
        sep_id: int,
        static_masks: bool,
        dupe_factor: int,
        split: str,
        features: datasets.Features,
    ) -> None:
        self.documents = tokenized
        self.cfg = cfg
        self.tables = tables
        self.cls, self.sep = np.array([cls_id], dtype=np.int32), np.array([sep_id], dtype=np.int32)
        self.static_masks = static_masks
        self.dupe_factor = dupe_factor
        self.split = split
        self.schema = features.arrow_schema

    def __call__(self, _batch: pa.Table, indices: list[int]) -> pa.Table:
        # The batch's documents and the random next segments are both read from a mapping of the tokenized
        # cache opened for this batch alone: the pages read stay resident only while the batch is built.
        # (`indices` are rows of the whole dataset, also under num_proc.)
        corpus = TokenizedDocuments(_fresh_column(self.documents, TOKENIZED))
        with garbage_collection_paused(), torch_single_threaded():
            return self._instances(corpus, indices)

    def _instances(self, corpus: TokenizedDocuments, indices: list[int]) -> pa.Table:
        rows: list[np.ndarray] = []  # per document and dupe: its instances end to end
        masked_rows: list[np.ndarray] = []
        lengths: list[int] = []
        labels: list[int] = []
        truncated: list[int] = []
        for index in indices:
            tokens, bounds = corpus.document(index)
            bounds = bounds.tolist()
            for dupe in range(self.dupe_factor):
                rng = random.Random(f"{self.cfg.seed}/{self.split}/{dupe}/{index}")
                instances = create_instances(bounds, index, len(corpus), corpus.segment, self.cfg, rng)
                if not instances:
                    continue
                pieces = []
                for a_start, a_end, b_tokens, b_start, b_end, label, dropped in instances:
                    b_tokens = tokens if b_tokens is None else b_tokens
                    pieces += (self.cls, tokens[a_start:a_end], self.sep, b_tokens[b_start:b_end], self.sep)
                    lengths.append(a_end - a_start + b_end - b_start + 3)
                    labels.append(label)
                    truncated.append(dropped)
                rows.append(np.concatenate(pieces))
                if self.static_masks:
                    generator = torch.Generator().manual_seed(rng.getrandbits(63))
                    rows[-1], masked = mask_row(rows[-1], self.cfg.masking, self.tables, generator)
                    masked_rows.append(masked)
        offsets = pa.array(np.concatenate([[0], np.cumsum(lengths, dtype=np.int64)]).astype(np.int32))
        columns = {
            "input_ids": pa.ListArray.from_arrays(offsets, _concatenate(rows)),
            "next_sentence_label": pa.array(labels, type=pa.int8()),
            "truncated_tokens": pa.array(truncated, type=pa.int32()),
        }
        if self.static_masks:
            columns["labels"] = pa.ListArray.from_arrays(offsets, _concatenate(masked_rows))
        return pa.Table.from_pydict(columns, schema=self.schema)


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


def _concatenate(arrays: list[np.ndarray]) -> np.ndarray:
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


def _fresh_column(dataset: datasets.Dataset, name: str) -> pa.ChunkedArray:
    """The column from a memory mapping of its own, released with it (a map() output has no indices mapping,
    so its cache files hold exactly its rows)."""
    if not dataset.cache_files:
        return dataset.data.column(name)
    tables = [pa.ipc.open_stream(pa.memory_map(f["filename"])).read_all() for f in dataset.cache_files]
    return pa.concat_tables(tables).column(name)


RandomSegment = Callable[[int, float, int], tuple[Any, int, int]]
"""(document index, start fraction, min tokens) -> (tokens of that document, start, end): whole sentences of
it from that point on, until min tokens (see TokenizedDocuments.segment)."""

Instance = tuple[int, int, Any, int, int, int, int]
"""(a_start, a_end, b_tokens, b_start, b_end, next_sentence_label, truncated_tokens): segment A is
tokens[a_start:a_end] of the document, B is b_tokens[b_start:b_end], b_tokens None meaning the document's own."""


def create_instances(
    bounds: list[int],
    document_index: int,
    num_documents: int,
    random_segment: RandomSegment,
    cfg: PretrainCorpusConfig,
    rng: random.Random,
) -> list[Instance]:
    """Instances of one document, whose k-th sentence is tokens[bounds[k]:bounds[k + 1]]."""
    max_tokens = cfg.max_seq_length - 3  # [CLS], [SEP], [SEP]
    target = max_tokens
    if rng.random() < cfg.short_seq_prob:
        target = rng.randint(2, max_tokens)

    instances = []
    last = len(bounds) - 2  # the last sentence
    first = i = 0  # the chunk is sentences first..i
    while i <= last:
        if i == last or bounds[i + 1] - bounds[first] >= target:
            sentences = i - first + 1
            random_next = None
            if sentences == 1:
                # The original forces RandomNext on a one-sentence chunk, which skews NSP (documents with a
                # short target become almost all RandomNext). Here the coin is drawn as for any chunk, and
                # on IsNext the following sentence is segment B. A lone last sentence has no next one to
                # offer, so it makes no instance (flipping the coin and dropping IsNext would skew NSP too).
                if i == last:
                    sentences = 0
                else:
                    random_next = rng.random() < cfg.random_next_prob
                    if not random_next:
                        i += 1
                        sentences = 2
            if sentences:
                a_sentences = 1 if sentences < 2 else rng.randint(1, sentences - 1)
                a_start, a_end = bounds[first], bounds[first + a_sentences]
                if random_next is None:
                    random_next = rng.random() < cfg.random_next_prob
                if random_next:
                    label = RANDOM_NEXT
                    other = rng.randrange(num_documents - 1)
                    other += other >= document_index  # any document but this one
                    need = max(1, target - (a_end - a_start))
                    b_tokens, b_start, b_end = random_segment(other, rng.random(), need)
                    i = first + a_sentences - 1  # the unused sentences go back for the next instance
                else:
                    label = IS_NEXT
                    b_tokens, b_start, b_end = None, a_end, bounds[i + 1]
                front_a, back_a, front_b, back_b = truncate_seq_pair(a_end - a_start, b_end - b_start, max_tokens, rng)
                a_start, a_end, b_start, b_end = a_start + front_a, a_end - back_a, b_start + front_b, b_end - back_b
                if a_end > a_start and b_end > b_start:
                    instances.append(
                        (a_start, a_end, b_tokens, b_start, b_end, label, front_a + back_a + front_b + back_b)
                    )
            first = i + 1
        i += 1
    return instances


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


def summarize(documents: datasets.Dataset, tokenized: datasets.Dataset, instances: datasets.Dataset) -> dict[str, Any]:
    """Counts of what was built, from the Arrow columns' lengths and offsets: no token is read, so the cache
    files are not paged in (map-built datasets have no indices mapping: their tables are their rows)."""
    sentences = tokens = 0
    for chunk in tokenized.data.column(TOKENIZED).chunks:
        sentence_lists = chunk.flatten()  # list<list<int>> -> the documents' sentences, by offsets
        sentences += len(sentence_lists)
        tokens += len(sentence_lists.flatten())
    instance_lengths = pc.list_value_length(instances.data.column("input_ids"))
    random_next = pc.sum(instances.data.column("next_sentence_label")).as_py() or 0
    count = len(instances)
    return {
        "documents": len(documents),
        "sentences": sentences,
        "tokens": tokens,
        "instances": count,
        "nsp_random_next_fraction": random_next / count if count else 0.0,
        "mean_instance_tokens": (pc.sum(instance_lengths).as_py() or 0) / count if count else 0.0,
        "truncated_tokens": pc.sum(instances.data.column("truncated_tokens")).as_py() or 0,
    }


def _num_proc(cfg: PretrainCorpusConfig, rows: int) -> int | None:
    return cfg.num_proc if cfg.num_proc > 1 and rows >= 2 * cfg.num_proc else None


def cache_key(cfg: PretrainCorpusConfig, tokenizer: PreTrainedTokenizerBase) -> str:
    """Fingerprint of everything that shapes the instances: the data config and the tokenizer's vocabulary."""
    return _fingerprint(asdict(cfg), tokenizer_fingerprint(tokenizer), str(MaskingMode(cfg.masking.mode)))


def _fingerprint(*parts: Any) -> str:
    return fingerprint(_FORMAT_VERSION, *parts)


def build(cfg: PretrainCorpusConfig, tokenizer: PreTrainedTokenizerBase, cache_dir: Path) -> DataBundle:
    """The pretraining data recipe: corpus -> held-out split -> tokens -> instances -> bundle."""
    if tokenizer.mask_token_id is None or tokenizer.sep_token_id is None or tokenizer.cls_token_id is None:
        raise DataError("the tokenizer has no [CLS]/[SEP]/[MASK] token; BERT pretraining needs all three")
    documents = load_documents(cfg, cache_dir)
    key = cache_key(cfg, tokenizer)
    tables = VocabularyTables(tokenizer)
    splits = dict(zip(("train", "heldout"), split_documents(documents, cfg), strict=True))
    built: dict[str, datasets.Dataset] = {}
    stats: dict[str, Any] = {}
    for split, docs in splits.items():
        tokenized = tokenize_documents(docs, tokenizer, cfg, key)
        if len(tokenized) < 2:
            raise DataError(
                f"{split} split: {len(tokenized)} document(s) with any text after tokenization; "
                "next-sentence prediction needs at least two"
            )
        built[split] = build_instances(
            tokenized,
            cfg,
            tables,
            key,
            cls_id=tokenizer.cls_token_id,
            sep_id=tokenizer.sep_token_id,
            # Held-out instances are masked once, with a fixed seed, so every evaluation scores the same task.
            static_masks=split == "heldout" or cfg.masking.mode == MaskingMode.static,
            dupe_factor=cfg.dupe_factor if split == "train" else 1,
            split=split,
        )
        stats[split] = summarize(docs, tokenized, built[split])
    for split, numbers in stats.items():
        log.info(
            "%s: %d documents, %d sentences, %d tokens -> %d instances (%.1f%% random next, "
            "%.1f tokens on average, %d tokens truncated)",
            split,
            numbers["documents"],
            numbers["sentences"],
            numbers["tokens"],
            numbers["instances"],
            100 * numbers["nsp_random_next_fraction"],
            numbers["mean_instance_tokens"],
            numbers["truncated_tokens"],
        )

    task = TaskSpec(
        kind=TaskKind.pretraining,
        vocab_size=len(tokenizer),
        pad_token_id=tokenizer.pad_token_id,
        max_seq_length=cfg.max_seq_length,
        metric_args={
            "majority_token_id": majority_token(built["train"], tables),
            "majority_nsp_label": int(stats["train"]["nsp_random_next_fraction"] > 0.5),
        },
    )
    collate_train = PretrainingCollator(tables, cfg.masking, seed=cfg.seed)
    collate_eval = PretrainingCollator(tables, cfg.masking, seed=cfg.seed)
    return DataBundle(
        task=task,
        train=built["train"],
        evaluation={"heldout": built["heldout"]},
        collate_train=collate_train,
        collate_eval=collate_eval,
        eval_outputs=pretraining_eval_outputs,
        count_tokens=lambda batch: batch["attention_mask"].sum(),
        stats=stats,
        description=_describe(cfg),
    )


def majority_token(instances: datasets.Dataset, tables: VocabularyTables, sample: int = 20_000) -> int:
    """The most frequent non-special token in (a prefix of) the training instances: the trivial
    baseline that always predicts it sets the floor MLM accuracy must beat."""
    # The arrow format slices the rows themselves (a select()'s .data would be the whole table).
    column = instances.with_format("arrow")[: min(sample, len(instances))]["input_ids"]
    ids = pc.list_flatten(column).to_numpy()
    counts = np.bincount(ids, minlength=tables.vocab_size)
    counts[tables.special.numpy()] = 0
    return int(counts.argmax())


def pretraining_eval_outputs(batch: dict[str, torch.Tensor], output: Any) -> dict[str, torch.Tensor]:
    """Per-example tensors to gather: predicted id, label and loss at every masked position, NSP guess."""
    labels = batch["labels"]
    masked = labels != IGNORE_INDEX
    logits = output.prediction_logits
    if logits.dim() == 3:  # a plain BertForPreTraining scores every position
        logits = logits[masked]
    logits = logits.float()
    predictions = torch.full_like(labels, IGNORE_INDEX)
    losses = torch.zeros(labels.shape, dtype=torch.float32, device=labels.device)
    predictions[masked] = logits.argmax(dim=-1)
    losses[masked] = torch.nn.functional.cross_entropy(logits, labels[masked], reduction="none")
    return {
        "mlm_predictions": predictions,
        "mlm_labels": labels,
        "mlm_losses": losses,
        "nsp_predictions": output.seq_relationship_logits.argmax(dim=-1),
        "nsp_labels": batch["next_sentence_label"],
    }


def _describe(cfg: PretrainCorpusConfig) -> str:
    match cfg.source:
        case CorpusSource.embedded:
            return f"docstrings of installed Python code ({', '.join(cfg.embedded.packages)})"
        case CorpusSource.hub:
            return f"Hub dataset {cfg.hub_name} ({cfg.hub_config or 'default'}, {cfg.hub_split})"
        case _:
            return f"{cfg.source} {', '.join(cfg.paths)}"
