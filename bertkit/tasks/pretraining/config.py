"""The data config of pretraining: where the text comes from, how instances are made, and how they are masked."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from bertkit.core.schema import input_path, require, resumable
from bertkit.readers.files import EncodingErrors


class Objective(StrEnum):
    """What the model learns besides filling in masked tokens."""

    mlm_nsp = "mlm_nsp"  # BERT: segment pairs, B the actual next text or from another document half the time
    mlm = "mlm"  # RoBERTa FULL-SENTENCES: no second task, contiguous sentences packed across documents
    sop = "sop"  # ALBERT sentence-order prediction: two consecutive segments, swapped half the time


class CorpusSource(StrEnum):
    """Where pretraining text comes from."""

    embedded = "embedded"  # docstrings of the installed standard library and packages
    sentence_files = "sentence_files"  # google-research/bert format: a sentence per line, blank line per doc
    prose_files = "prose_files"  # plain prose: paragraphs split into sentences by a sentence splitter
    hub = "hub"  # a Hugging Face Hub dataset with a text column
    local = "local"  # json / jsonl / parquet / csv files with a text column


class MaskingMode(StrEnum):
    """When MLM masks are drawn."""

    dynamic = "dynamic"  # fresh masks for every batch, in the collator (RoBERTa-style)
    static = "static"  # masks fixed at preprocessing, `dupe_factor` copies (google-research/bert)


@dataclass(kw_only=True, slots=True)
class EmbeddedCorpusConfig:
    """The corpus that needs no download: docstrings of installed Python code, one document per module."""

    packages: list[str] = field(default_factory=lambda: ["stdlib"])
    """Top-level packages to read, in this order; "stdlib" is the standard library."""
    max_chars: int = 12_000_000
    """Stop adding modules once this many characters of text are collected."""
    min_sentences: int = 4
    """Modules with fewer prose sentences than this are skipped."""


@dataclass(kw_only=True, slots=True)
class MaskingConfig:
    """Masked-language-model corruption (google-research/bert defaults)."""

    mode: MaskingMode = MaskingMode.dynamic
    mlm_probability: float = 0.15
    """Fraction of (non-special) tokens chosen for prediction."""
    mask_replace_prob: float = 0.8
    """Of the chosen tokens, the fraction replaced by [MASK]."""
    random_replace_prob: float = 0.1
    """Of the chosen tokens, the fraction replaced by a random token; the rest are kept."""
    whole_word: bool = False
    """Choose whole words: all WordPiece pieces of a word are masked together, or none."""

    def __post_init__(self) -> None:
        require(0 < self.mlm_probability < 1, "data.masking.mlm_probability", "must be in (0, 1)")
        require(
            self.mask_replace_prob >= 0
            and self.random_replace_prob >= 0
            and self.mask_replace_prob + self.random_replace_prob <= 1,
            "data.masking.mask_replace_prob",
            "mask_replace_prob and random_replace_prob must be >= 0 and sum to at most 1",
        )


@dataclass(kw_only=True, slots=True)
class PretrainCorpusConfig:
    """Data recipe for pretraining from raw text."""

    objective: Objective = Objective.mlm_nsp
    """mlm_nsp (BERT), mlm (RoBERTa's FULL-SENTENCES, no second task) or sop (ALBERT's sentence order)."""
    source: CorpusSource = CorpusSource.embedded
    paths: list[str] = input_path(default_factory=list)
    """Files, directories or glob patterns (sentence_files, prose_files, local)."""
    hub_name: str | None = None
    """Hub dataset id for source=hub, e.g. Salesforce/wikitext."""
    hub_config: str | None = None
    """Hub dataset configuration, e.g. wikitext-103-raw-v1."""
    hub_split: str = "train"
    text_column: str = "text"
    """Column holding the text (source=hub or local)."""
    document_start_pattern: str | None = None
    """source=hub or local: a regex; rows are joined into one document until a row matches it
    (wikitext: '^ = [^=].* = $'). None: every row is a document."""
    encoding_errors: EncodingErrors = EncodingErrors.strict
    strip_boilerplate: bool = True
    """source=prose_files: keep only the text between Project Gutenberg's "*** START OF" and "*** END OF"
    lines where a file has them (the license and title page are not prose of the book)."""
    embedded: EmbeddedCorpusConfig = field(default_factory=EmbeddedCorpusConfig)
    max_documents: int | None = None
    """Use only the first N documents (after reading, before the split)."""
    eval_fraction: float = 0.02
    """Fraction of documents held out for evaluation (at least 2, so NSP has a random next)."""
    max_eval_documents: int = 300
    """Cap on held-out documents, so evaluation stays cheap on big corpora."""
    max_seq_length: int = 128
    """Tokens per instance, [CLS] and [SEP]s included."""
    short_seq_prob: float = 0.1
    """mlm_nsp, sop: probability of a shorter random target length (pretraining/fine-tuning length mismatch)."""
    random_next_prob: float = 0.5
    """mlm_nsp: probability that segment B comes from another document (NSP negative)."""
    swap_prob: float = 0.5
    """sop: probability that the two segments change places (SOP negative)."""
    dupe_factor: int = 1
    """Number of times instances are built, each with other splits and, if static, other masks (mlm packs the
    same way every time: its copies differ by their static masks, or with dynamic masks are more passes)."""
    masking: MaskingConfig = field(default_factory=MaskingConfig)
    num_proc: int = resumable(2)
    """Worker processes for tokenization and instance building (part of the cache fingerprint)."""
    map_batch_size: int = 256
    """Documents per `datasets.map` batch (part of the cache fingerprint)."""
    packing: bool = False
    """Run the encoder on rows that each hold several of the batch's instances, attention confined to each
    (bertkit.packing): the same loss as padded batches with less work where they hold padding."""
    streaming: bool = False
    """Read the corpus as it is trained on (a Hub dataset in streaming mode, files as iterable datasets) and cut
    it into instances on the fly, stream_buffer documents at a time, instead of caching it whole first. The
    held-out documents are the stream's first max_eval_documents (eval_fraction does not apply); the run needs
    trainer.max_steps."""
    stream_buffer: int = 1000
    """data.streaming: documents read, cut into instances and shuffled together; random next segments come from
    among them. Memory grows with it, not with the corpus."""
    num_shards: int = 1
    """Cut the corpus into this many contiguous shards of documents, each held out from, tokenized and cut into
    instances on its own (random next segments come from the same shard) and cached apart, so that
    `python -m bertkit.prepare data.shard=i` can build shard i on machine i while the others build theirs; a
    training run reads them all."""
    shard: int | None = None
    """`python -m bertkit.prepare` only: build shard `shard` (0 .. num_shards - 1) of the corpus alone."""
    seed: int = 12345
    """Seed of the instance builder and the held-out split, independent of the training seed so that
    runs with other training seeds share one cache."""

    def __post_init__(self) -> None:
        require(self.max_seq_length >= 8, "data.max_seq_length", "must be >= 8")
        for key in ("short_seq_prob", "random_next_prob", "swap_prob"):
            require(0 <= getattr(self, key) <= 1, f"data.{key}", "must be in [0, 1]")
        require(0 < self.eval_fraction < 1, "data.eval_fraction", "must be in (0, 1)")
        require(self.max_eval_documents >= 2, "data.max_eval_documents", "must be >= 2")
        require(self.dupe_factor >= 1, "data.dupe_factor", "must be >= 1")
        require(self.num_proc >= 1, "data.num_proc", "must be >= 1")
        require(self.map_batch_size >= 1, "data.map_batch_size", "must be >= 1")
        require(self.stream_buffer >= 2, "data.stream_buffer", "must be >= 2 (random next segments need two documents)")
        require(
            not (self.streaming and self.document_start_pattern),
            "data.document_start_pattern",
            "joins rows across the whole corpus, which data.streaming=true never holds; stream one document per row",
        )
        require(self.num_shards >= 1, "data.num_shards", "must be >= 1")
        require(
            self.shard is None or 0 <= self.shard < self.num_shards,
            "data.shard",
            f"must be one of 0 .. {self.num_shards - 1} (data.num_shards={self.num_shards})",
        )
        require(
            not (self.streaming and self.max_documents is not None),
            "data.max_documents",
            "counts documents before the held-out split, which a stream (data.streaming) makes as it reads",
        )
        require(
            not (self.streaming and self.num_shards > 1),
            "data.num_shards",
            "a streamed corpus is never cached: each process reads its own shard as it trains (data.streaming)",
        )
        needs_paths = (CorpusSource.sentence_files, CorpusSource.prose_files, CorpusSource.local)
        require(
            self.source not in needs_paths or bool(self.paths),
            "data.paths",
            f"data.source={self.source} reads files: set data.paths=[file, dir or glob, ...]",
        )
        require(
            self.source != CorpusSource.hub or bool(self.hub_name),
            "data.hub_name",
            "data.source=hub needs data.hub_name (e.g. Salesforce/wikitext)",
        )
