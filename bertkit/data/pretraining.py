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
from bertkit.data.masking import IGNORE_INDEX, PretrainingCollator, VocabularyTables, mask_instances
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

    def tokenize(batch: dict[str, list]) -> dict[str, list]:
        flat = [sentence for document in batch[SENTENCES] for sentence in document]
        with garbage_collection_paused():
            ids = encode(flat)
        out, start = [], 0
        for document in batch[SENTENCES]:
            sentences = [s for s in ids[start : start + len(document)] if s]
            start += len(document)
            if sentences:  # a document without tokens could never give a random next segment
                out.append(sentences)
        return {TOKENIZED: out}

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
    builder = _InstanceBuilder(tokenized, cfg, tables, cls_id, sep_id, static_masks, dupe_factor, split)
    return tokenized.map(
        builder,
        batched=True,
        with_indices=True,
        batch_size=rows_per_batch(tokenized, _TOKENS_PER_BATCH, max(1, cfg.map_batch_size // 8)),
        num_proc=_num_proc(cfg, len(tokenized)),
        remove_columns=tokenized.column_names,
        features=datasets.Features(features),
        new_fingerprint=_fingerprint("instances", tokenized._fingerprint, key, split, static_masks, dupe_factor),
        desc=f"Building {split} instances",
    )


class _InstanceBuilder:
    """The `datasets.map` function; it reads random documents straight from the Arrow table."""

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
    ) -> None:
        self.documents = tokenized
        self.cfg = cfg
        self.tables = tables
        self.cls_id, self.sep_id = cls_id, sep_id
        self.static_masks = static_masks
        self.dupe_factor = dupe_factor
        self.split = split
        self._column = None

    def __call__(self, batch: dict[str, list], indices: list[int]) -> dict[str, list]:
        # Random next segments come from anywhere in the corpus; a mapping of the tokenized cache opened for
        # this batch alone keeps the pages read resident only while the batch is built.
        self._column = _fresh_column(self.documents, TOKENIZED)
        try:
            with garbage_collection_paused(), torch_single_threaded():
                return self._instances(batch, indices)
        finally:
            self._column = None

    def _instances(self, batch: dict[str, list], indices: list[int]) -> dict[str, list]:
        out: dict[str, list] = {"input_ids": [], "next_sentence_label": [], "truncated_tokens": []}
        if self.static_masks:
            out["labels"] = []
        for document, index in zip(batch[TOKENIZED], indices, strict=True):
            for dupe in range(self.dupe_factor):
                rng = random.Random(f"{self.cfg.seed}/{self.split}/{dupe}/{index}")
                instances = create_instances(document, index, len(self.documents), self._random_document, self.cfg, rng)
                ids = [[self.cls_id, *a, self.sep_id, *b, self.sep_id] for a, b, _, _ in instances]
                if self.static_masks:
                    generator = torch.Generator().manual_seed(rng.getrandbits(63))
                    ids, labels = mask_instances(ids, self.cfg.masking, self.tables, generator)
                    out["labels"].extend(labels)
                out["input_ids"].extend(ids)
                out["next_sentence_label"].extend(label for _, _, label, _ in instances)
                out["truncated_tokens"].extend(dropped for _, _, _, dropped in instances)
        return out

    def _random_document(self, index: int, rng: random.Random, start_fraction: float, min_tokens: int):
        """Sentences of another document, from a random start until min_tokens (Arrow slices only).

        Only a window of sentence lengths after the start is read, widened until it reaches min_tokens: a
        document may be a whole book, and reading all its offsets for every random segment would page in
        most of the corpus (and cost time)."""
        sentences = self._column[index].values
        start = int(start_fraction * len(sentences))
        window = 16
        while True:
            lengths = pc.list_value_length(sentences.slice(start, window)).to_numpy()
            reached = np.flatnonzero(np.cumsum(lengths) >= min_tokens)
            if len(reached) or start + window >= len(sentences):
                break
            window *= 4
        stop = start + (int(reached[0]) + 1 if len(reached) else len(lengths))
        return sentences.slice(start, stop - start).to_pylist()

    def __getstate__(self) -> dict:
        # Pickled into worker processes: each one maps the Arrow file itself.
        state = self.__dict__.copy()
        state["_column"] = None
        return state


@contextmanager
def garbage_collection_paused() -> Iterator[None]:
    """Tokens and instances are millions of small lists, none of them in a reference cycle; the cyclic
    collector, triggered by their allocation, would scan every live list again and again (a third of the
    building time on the Gutenberg corpus). Plain reference counting still frees them."""
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


RandomDocument = Callable[[int, random.Random, float, int], list[list[int]]]
"""(document index, rng, start fraction, min tokens) -> sentences of that document from that point on."""


def create_instances(
    document: list[list[int]],
    document_index: int,
    num_documents: int,
    random_document: RandomDocument,
    cfg: PretrainCorpusConfig,
    rng: random.Random,
) -> list[tuple[list[int], list[int], int, int]]:
    """Instances (tokens_a, tokens_b, next_sentence_label, truncated_tokens) of one document."""
    max_tokens = cfg.max_seq_length - 3  # [CLS], [SEP], [SEP]
    target = max_tokens
    if rng.random() < cfg.short_seq_prob:
        target = rng.randint(2, max_tokens)

    instances = []
    chunk: list[list[int]] = []
    chunk_length = 0
    last = len(document) - 1
    i = 0
    while i <= last:
        chunk.append(document[i])
        chunk_length += len(document[i])
        if i == last or chunk_length >= target:
            random_next = None
            if len(chunk) == 1:
                # The original forces RandomNext on a one-sentence chunk, which skews NSP (documents with a
                # short target become almost all RandomNext). Here the coin is drawn as for any chunk, and
                # on IsNext the following sentence is segment B. A lone last sentence has no next one to
                # offer, so it makes no instance (flipping the coin and dropping IsNext would skew NSP too).
                if i == last:
                    chunk = []
                else:
                    random_next = rng.random() < cfg.random_next_prob
                    if not random_next:
                        i += 1
                        chunk.append(document[i])
            if chunk:
                a_end = 1 if len(chunk) < 2 else rng.randint(1, len(chunk) - 1)
                tokens_a = [t for sentence in chunk[:a_end] for t in sentence]
                if random_next is None:
                    random_next = rng.random() < cfg.random_next_prob
                if random_next:
                    label = RANDOM_NEXT
                    other = rng.randrange(num_documents - 1)
                    other += other >= document_index  # any document but this one
                    need = max(1, target - len(tokens_a))
                    sentences = random_document(other, rng, rng.random(), need)
                    tokens_b = []
                    for sentence in sentences:
                        tokens_b.extend(sentence)
                        if len(tokens_b) >= need:
                            break
                    i -= len(chunk) - a_end  # the unused sentences go back for the next instance
                else:
                    label = IS_NEXT
                    tokens_b = [t for sentence in chunk[a_end:] for t in sentence]
                dropped = truncate_seq_pair(tokens_a, tokens_b, max_tokens, rng)
                if tokens_a and tokens_b:
                    instances.append((tokens_a, tokens_b, label, dropped))
            chunk, chunk_length = [], 0
        i += 1
    return instances


def truncate_seq_pair(tokens_a: list[int], tokens_b: list[int], max_tokens: int, rng: random.Random) -> int:
    """Trim the longer list, from the front or the back at random, until both fit; returns tokens cut.

    The original cuts one token at a time from the longer list (the second on a tie), from either end by a
    coin flip; noise it found helps. The counts that procedure ends with are computed here directly: the
    longer list is cut down to the shorter, the rest alternately, and the tokens cut at the front of each
    list are a binomial draw (one random bit per cut token) instead of a loop of coin flips.
    """
    excess = len(tokens_a) + len(tokens_b) - max_tokens
    if excess <= 0:
        return 0
    gap = len(tokens_a) - len(tokens_b)
    cut_a, cut_b = min(excess, max(gap, 0)), min(excess, max(-gap, 0))
    rest = excess - cut_a - cut_b
    cut_a, cut_b = cut_a + rest // 2, cut_b + rest - rest // 2
    for tokens, cut in ((tokens_a, cut_a), (tokens_b, cut_b)):
        if cut:
            front = rng.getrandbits(cut).bit_count()
            tokens[:] = tokens[front : len(tokens) - (cut - front)]
    return excess


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
        count_tokens=lambda batch: int(batch["attention_mask"].sum()),
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
