"""Typed configuration: one dataclass schema per Hydra group option, converted once by `load`.

YAML files under `conf/` only set values; these schemas decide which keys exist and what type each one
has, so a misspelled override, a wrong type or an unknown enum value stops the run before any work,
with an error that names the key. Code below `train.py` receives these dataclasses, never a DictConfig.
"""

from __future__ import annotations

from dataclasses import MISSING as MISSING_FIELD
from dataclasses import dataclass, field, fields, is_dataclass
from enum import StrEnum
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf

from bertkit.errors import ConfigError


def _require(condition: bool, key: str, message: str) -> None:
    if not condition:
        raise ConfigError(f"invalid setting {key}: {message}")


# --------------------------------------------------------------------------------------------- choices


class CorpusSource(StrEnum):
    """Where pretraining text comes from."""

    embedded = "embedded"  # docstrings of the installed standard library and packages
    sentence_files = "sentence_files"  # google-research/bert format: a sentence per line, blank line per doc
    prose_files = "prose_files"  # plain prose: paragraphs split into sentences by a sentence splitter
    hub = "hub"  # a Hugging Face Hub dataset with a text column
    local = "local"  # json / jsonl / parquet / csv files with a text column


class EncodingErrors(StrEnum):
    """What to do with bytes that are not UTF-8."""

    strict = "strict"  # stop, naming the file and byte offset
    replace = "replace"  # decode with U+FFFD and go on


class MaskingMode(StrEnum):
    """When MLM masks are drawn."""

    dynamic = "dynamic"  # fresh masks for every batch, in the collator (RoBERTa-style)
    static = "static"  # masks fixed at preprocessing, `dupe_factor` copies (google-research/bert)


class MixedPrecision(StrEnum):
    no = "no"
    fp16 = "fp16"
    bf16 = "bf16"


class SchedulerKind(StrEnum):
    linear = "linear"
    cosine = "cosine"
    constant = "constant_with_warmup"


class AttnImplementation(StrEnum):
    sdpa = "sdpa"
    eager = "eager"
    flex_attention = "flex_attention"
    flash_attention_2 = "flash_attention_2"


class ResumeMode(StrEnum):
    """What a run does with the checkpoints of an earlier run in its output_dir."""

    auto = "auto"  # resume from the newest, if the earlier run had the same configuration; else refuse
    never = "never"  # start over (the same configuration only: another run's results are never overwritten)
    force = "force"  # resume even though settings changed (say, a new learning rate for the rest of the run)


class NonFiniteLoss(StrEnum):
    """What to do when a step's gradients are NaN or infinite."""

    stop = "stop"  # stop with the step number; the last good checkpoint stays the newest
    skip = "skip"  # drop that batch's update, count it, and go on


class GlueTask(StrEnum):
    """The nine GLUE tasks, by their Hub configuration names."""

    cola = "cola"
    sst2 = "sst2"
    mrpc = "mrpc"
    stsb = "stsb"
    qqp = "qqp"
    mnli = "mnli"
    qnli = "qnli"
    rte = "rte"
    wnli = "wnli"


class BadRows(StrEnum):
    """What to do with a row of a GLUE file that has the wrong number of fields."""

    error = "error"  # stop, naming the file and line
    skip = "skip"  # leave it out and report how many were skipped


class LabelKind(StrEnum):
    """How the label column of your own data is read."""

    auto = "auto"  # float values mean regression, anything else classification
    classification = "classification"
    regression = "regression"


# --------------------------------------------------------------------------------------------- schemas


@dataclass(kw_only=True, slots=True)
class TokenizerConfig:
    """Which tokenizer to use, or how to train one."""

    name_or_path: str | None = None
    """Hub id or folder of a tokenizer. None: the model checkpoint's tokenizer, or, when the model is
    trained from scratch, a WordPiece vocabulary trained on the pretraining corpus."""
    vocab_size: int = 8192
    """Size of a trained WordPiece vocabulary (special tokens included)."""
    lowercase: bool = True
    """Lowercase and strip accents before WordPiece (uncased BERT)."""
    min_frequency: int = 2
    """A trained WordPiece keeps only pieces seen at least this often."""

    def __post_init__(self) -> None:
        _require(self.vocab_size >= 128, "tokenizer.vocab_size", f"{self.vocab_size} is too small (>= 128)")
        _require(self.min_frequency >= 1, "tokenizer.min_frequency", "must be >= 1")


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
        _require(0 < self.mlm_probability < 1, "data.masking.mlm_probability", "must be in (0, 1)")
        _require(
            self.mask_replace_prob >= 0
            and self.random_replace_prob >= 0
            and self.mask_replace_prob + self.random_replace_prob <= 1,
            "data.masking.mask_replace_prob",
            "mask_replace_prob and random_replace_prob must be >= 0 and sum to at most 1",
        )


@dataclass(kw_only=True, slots=True)
class PretrainCorpusConfig:
    """Data recipe for MLM + NSP pretraining from raw text."""

    source: CorpusSource = CorpusSource.embedded
    paths: list[str] = field(default_factory=list)
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
    """Tokens per instance, [CLS] and both [SEP] included."""
    short_seq_prob: float = 0.1
    """Probability of a shorter random target length (pretraining/fine-tuning length mismatch)."""
    random_next_prob: float = 0.5
    """Probability that segment B comes from another document (NSP negative)."""
    dupe_factor: int = 1
    """Number of times instances are built, each with other splits and, if static, other masks."""
    masking: MaskingConfig = field(default_factory=MaskingConfig)
    num_proc: int = 2
    """Worker processes for tokenization and instance building (part of the cache fingerprint)."""
    map_batch_size: int = 256
    """Documents per `datasets.map` batch (part of the cache fingerprint)."""
    seed: int = 12345
    """Seed of the instance builder and the held-out split, independent of the training seed so that
    runs with other training seeds share one cache."""

    def __post_init__(self) -> None:
        _require(self.max_seq_length >= 8, "data.max_seq_length", "must be >= 8")
        _require(0 <= self.short_seq_prob <= 1, "data.short_seq_prob", "must be in [0, 1]")
        _require(0 <= self.random_next_prob <= 1, "data.random_next_prob", "must be in [0, 1]")
        _require(0 < self.eval_fraction < 1, "data.eval_fraction", "must be in (0, 1)")
        _require(self.max_eval_documents >= 2, "data.max_eval_documents", "must be >= 2")
        _require(self.dupe_factor >= 1, "data.dupe_factor", "must be >= 1")
        _require(self.num_proc >= 1, "data.num_proc", "must be >= 1")
        _require(self.map_batch_size >= 1, "data.map_batch_size", "must be >= 1")
        needs_paths = (CorpusSource.sentence_files, CorpusSource.prose_files, CorpusSource.local)
        _require(
            self.source not in needs_paths or bool(self.paths),
            "data.paths",
            f"data.source={self.source} reads files: set data.paths=[file, dir or glob, ...]",
        )
        _require(
            self.source != CorpusSource.hub or bool(self.hub_name),
            "data.hub_name",
            "data.source=hub needs data.hub_name (e.g. Salesforce/wikitext)",
        )


@dataclass(kw_only=True, slots=True)
class FineTuningDataConfig:
    """Settings every fine-tuning data recipe has (GLUE, your own data, SQuAD, NER)."""

    pad_to_multiple_of: int | None = 8
    """Batches are padded to their longest example, rounded up to this (tensor cores like multiples of 8)."""
    max_train_samples: int | None = None
    """Use only the first N training examples (quick trials, debugging)."""
    max_eval_samples: int | None = None
    """Use only the first N examples of each evaluation and prediction split."""
    num_proc: int = 1
    """Worker processes for tokenization."""

    def __post_init__(self) -> None:
        _require(
            self.pad_to_multiple_of is None or self.pad_to_multiple_of >= 1, "data.pad_to_multiple_of", "must be >= 1"
        )
        for key in ("max_train_samples", "max_eval_samples"):
            value = getattr(self, key)
            _require(value is None or value >= 1, f"data.{key}", "must be >= 1")
        _require(self.num_proc >= 1, "data.num_proc", "must be >= 1")


@dataclass(kw_only=True, slots=True)
class SentenceTaskConfig(FineTuningDataConfig):
    """Settings shared by the recipes that classify a sentence or a sentence pair (GLUE, your own data)."""

    max_seq_length: int = 128
    """Tokens per example, special tokens included; longer examples are truncated and counted."""
    predict: bool = True
    """Predict the unlabeled test split(s) and write them under predictions/."""

    def __post_init__(self) -> None:
        _require(self.max_seq_length >= 8, "data.max_seq_length", "must be >= 8")
        FineTuningDataConfig.__post_init__(self)


@dataclass(kw_only=True, slots=True)
class GlueDataConfig(SentenceTaskConfig):
    """Data recipe: one GLUE task, from the original TSV layout (GLUE_DIR) or the Hub."""

    task: GlueTask = MISSING
    glue_dir: str | None = None
    """Folder in the original layout (<glue_dir>/MRPC/train.tsv, ...). None: the Hub (needs network)."""
    hub_name: str = "nyu-mll/glue"
    """Hub dataset read when glue_dir is None."""
    bad_rows: BadRows = BadRows.error
    """A TSV row with the wrong number of fields: stop naming file and line, or skip it and count it."""


@dataclass(kw_only=True, slots=True)
class CustomDataConfig(SentenceTaskConfig):
    """Data recipe: your own CSV, TSV, JSON, JSONL or parquet files, one or two text columns and a label."""

    train_file: str = MISSING
    validation_file: str | None = None
    """None: hold out data.validation_fraction of the training file (seeded)."""
    test_file: str | None = None
    """Rows to predict; a label column there is optional."""
    text_column: str = "text"
    text_pair_column: str | None = None
    """Second text of a pair task (e.g. the hypothesis of an entailment pair)."""
    label_column: str = "label"
    label_kind: LabelKind = LabelKind.auto
    validation_fraction: float = 0.1
    split_seed: int = 42
    """Seed of the held-out split, independent of the training seed so every seed sees the same split."""

    def __post_init__(self) -> None:
        SentenceTaskConfig.__post_init__(self)
        _require(0 < self.validation_fraction < 1, "data.validation_fraction", "must be in (0, 1)")


class SquadVersion(StrEnum):
    v1 = "v1"  # every question has an answer in its paragraph
    v2 = "v2"  # some have none (is_impossible): predict "" when the null score wins


@dataclass(kw_only=True, slots=True)
class SquadDataConfig(FineTuningDataConfig):
    """Data recipe: extractive question answering on SQuAD-format JSON files, or the Hub's SQuAD."""

    version: SquadVersion = SquadVersion.v1
    train_file: str | None = None
    """SQuAD JSON (data[].paragraphs[].qas[]). None: the Hub's rajpurkar/squad or squad_v2 (network)."""
    validation_file: str | None = None
    """None with a train_file: hold out data.split_fraction of its articles (no article in both parts)."""
    split_fraction: float = 0.2
    split_seed: int = 42
    """Seed of the article split, independent of the training seed so every seed sees the same split."""
    hub_name: str | None = None
    """Hub dataset when train_file is None; None: rajpurkar/squad (v1) or rajpurkar/squad_v2 (v2)."""
    max_seq_length: int = 384
    doc_stride: int = 128
    """Tokens shared by consecutive windows of a context too long for one feature."""
    max_query_length: int = 64
    """Question tokens kept; longer questions are truncated and counted."""
    n_best_size: int = 20
    max_answer_length: int = 30
    """Longest answer span predicted, in tokens."""
    null_score_diff_threshold: float = 0.0
    """v2: predict no answer when null score - best span score exceeds this."""

    def __post_init__(self) -> None:
        _require(self.max_seq_length >= 32, "data.max_seq_length", "must be >= 32")
        _require(self.max_query_length >= 1, "data.max_query_length", "must be >= 1")
        _require(
            self.max_query_length + 4 < self.max_seq_length,
            "data.max_query_length",
            f"must leave room for context within data.max_seq_length={self.max_seq_length}",
        )
        _require(
            0 < self.doc_stride < self.max_seq_length - self.max_query_length - 3,
            "data.doc_stride",
            "must be > 0 and smaller than the context part of a feature (max_seq_length - max_query_length - 3)",
        )
        _require(0 < self.split_fraction < 1, "data.split_fraction", "must be in (0, 1)")
        _require(self.n_best_size >= 1, "data.n_best_size", "must be >= 1")
        _require(self.max_answer_length >= 1, "data.max_answer_length", "must be >= 1")
        FineTuningDataConfig.__post_init__(self)
        _require(
            self.train_file is not None or self.validation_file is None,
            "data.validation_file",
            "needs data.train_file (without it, both splits come from the Hub)",
        )


@dataclass(kw_only=True, slots=True)
class NerDataConfig(FineTuningDataConfig):
    """Data recipe: a tag per word, from CoNLL-style column files (CoNLL-2003 or your own) or the Hub."""

    train_file: str | None = None
    """Column file: a word per line, tag in column data.tag_column, blank lines between sentences,
    -DOCSTART- lines between documents. None: the Hub's eriktks/conll2003 (network)."""
    validation_file: str | None = None
    """Scored during training (each epoch) and at the end."""
    test_file: str | None = None
    """Scored once, at the end."""
    hub_name: str = "eriktks/conll2003"
    tag_column: int = -1
    """Column of the tag (0-based; negative counts from the end: CoNLL-2003's NER tag is the last)."""
    to_iob2: bool = True
    """Convert IOB1 tags (CoNLL-2003's: I- starts an entity unless it follows one of its type) to IOB2 (B- starts
    every entity). Tags already in IOB2 are left as they are."""
    label_all_subtokens: bool = False
    """Train on every sub-token of a word (B- becomes I- after the first), not only the first."""
    max_seq_length: int = 128
    stride: int = 32
    """Sub-tokens shared by consecutive windows of a sentence longer than max_seq_length."""

    def __post_init__(self) -> None:
        _require(self.max_seq_length >= 8, "data.max_seq_length", "must be >= 8")
        _require(0 <= self.stride < self.max_seq_length // 2, "data.stride", "must be in [0, max_seq_length / 2)")
        FineTuningDataConfig.__post_init__(self)
        _require(
            self.train_file is not None or (self.validation_file is None and self.test_file is None),
            "data.train_file",
            "is needed with data.validation_file or data.test_file (without files, all splits come from the Hub)",
        )


@dataclass(kw_only=True, slots=True)
class ModelConfig:
    """Model recipe: a BERT from scratch (sizes below) or from a checkpoint."""

    name_or_path: str | None = None
    """Checkpoint folder or Hub id to start from. None: initialise from scratch with the sizes below."""
    hidden_size: int = 128
    num_hidden_layers: int = 2
    num_attention_heads: int = 2
    intermediate_size: int = 512
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    hidden_dropout_prob: float = 0.1
    attention_probs_dropout_prob: float = 0.1
    initializer_range: float = 0.02
    attn_implementation: AttnImplementation = AttnImplementation.sdpa
    masked_positions_only: bool = True
    """Compute MLM logits only at masked positions (same weights and loss, far less work)."""
    trust_remote_code: bool = False
    """Allow a Hub checkpoint to run its own Python code. Off: only transformers' BERT code runs."""

    def __post_init__(self) -> None:
        if self.name_or_path is None:
            _require(
                self.hidden_size % self.num_attention_heads == 0,
                "model.hidden_size",
                f"{self.hidden_size} is not a multiple of model.num_attention_heads={self.num_attention_heads}",
            )
        _require(self.num_hidden_layers >= 1, "model.num_hidden_layers", "must be >= 1")


@dataclass(kw_only=True, slots=True)
class TrainerConfig:
    """The optimisation loop."""

    per_device_batch_size: int = 32
    eval_batch_size: int = 64
    gradient_accumulation_steps: int = 1
    learning_rate: float = 1e-4
    weight_decay: float = 0.01
    """Applied to weights only; biases and LayerNorm parameters are never decayed."""
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    adam_epsilon: float = 1e-6
    max_grad_norm: float = 1.0
    """Gradient clipping by global norm; 0 turns it off."""
    lr_scheduler: SchedulerKind = SchedulerKind.linear
    warmup_steps: int = 0
    warmup_ratio: float = 0.0
    """Warmup as a fraction of all optimizer steps, used when warmup_steps is 0."""
    num_epochs: int = 1
    max_steps: int | None = None
    """Optimizer steps to run; overrides num_epochs when set. 0: no training, only evaluation (and
    prediction) of the model as it is."""
    max_minutes: float | None = None
    """Stop (and evaluate, save) after this much training time."""
    mixed_precision: MixedPrecision = MixedPrecision.no
    log_every: int = 10
    eval_every: int | None = None
    """Evaluate every N optimizer steps (and always at the end)."""
    eval_every_epoch: bool = False
    """Evaluate at the end of every epoch (and always at the end)."""
    save_every: int | None = None
    """Write a resumable checkpoint every N optimizer steps."""
    keep_last: int = 2
    """Resumable checkpoints to keep."""
    resume: ResumeMode = ResumeMode.auto
    """auto: resume from the newest checkpoint in output_dir if the run there had these settings (refuse
    otherwise); never: start over; force: resume although settings changed."""
    on_nonfinite_loss: NonFiniteLoss = NonFiniteLoss.stop
    num_workers: int = 0
    """DataLoader worker processes (0: load in the training process)."""
    group_by_length: bool = False
    """Batch training examples of similar lengths together (shuffled in groups of 50 batches, sorted within):
    less padding when lengths vary a lot, e.g. SST-2's short sentences next to long ones."""
    torch_compile: bool = False
    progress_bar: bool = True

    def __post_init__(self) -> None:
        for key in ("per_device_batch_size", "eval_batch_size", "gradient_accumulation_steps", "log_every"):
            _require(getattr(self, key) >= 1, f"trainer.{key}", "must be >= 1")
        _require(self.learning_rate > 0, "trainer.learning_rate", "must be > 0")
        _require(self.num_epochs >= 1, "trainer.num_epochs", "must be >= 1")
        _require(self.max_steps is None or self.max_steps >= 0, "trainer.max_steps", "must be >= 0")
        _require(self.warmup_steps >= 0, "trainer.warmup_steps", "must be >= 0")
        _require(0 <= self.warmup_ratio < 1, "trainer.warmup_ratio", "must be in [0, 1)")
        _require(self.max_grad_norm >= 0, "trainer.max_grad_norm", "must be >= 0")
        _require(self.keep_last >= 1, "trainer.keep_last", "must be >= 1")
        _require(self.eval_every is None or self.eval_every >= 1, "trainer.eval_every", "must be >= 1")
        _require(self.save_every is None or self.save_every >= 1, "trainer.save_every", "must be >= 1")


@dataclass(kw_only=True, slots=True)
class RunConfig:
    """One run: what to train, on which data, how, and where the results go."""

    name: str = "bertkit"
    seed: int = 42
    output_dir: str = MISSING
    """Run directory; defaults to outputs/<name>/seed<seed> so that every process agrees on it."""
    cache_dir: str = MISSING
    """Preprocessed corpora and trained tokenizers, shared by runs (BERTKIT_CACHE overrides)."""
    data: Any = MISSING
    model: ModelConfig = field(default_factory=ModelConfig)
    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)

    def __post_init__(self) -> None:
        if isinstance(self.data, DataConfig) and self.model.name_or_path is None:
            _require(
                self.data.max_seq_length <= self.model.max_position_embeddings,
                "data.max_seq_length",
                f"{self.data.max_seq_length} is larger than model.max_position_embeddings="
                f"{self.model.max_position_embeddings}",
            )


DataConfig = PretrainCorpusConfig | GlueDataConfig | CustomDataConfig | SquadDataConfig | NerDataConfig
"""Union of the data recipes; grows with each recipe."""


def register_configs() -> None:
    """Put the schemas in Hydra's ConfigStore; YAML files name them in their defaults lists."""
    store = ConfigStore.instance()
    store.store(name="run_schema", node=RunConfig)
    store.store(group="data", name="pretrain_corpus_schema", node=PretrainCorpusConfig)
    store.store(group="data", name="glue_schema", node=GlueDataConfig)
    store.store(group="data", name="custom_schema", node=CustomDataConfig)
    store.store(group="data", name="squad_schema", node=SquadDataConfig)
    store.store(group="data", name="ner_schema", node=NerDataConfig)
    store.store(group="model", name="model_schema", node=ModelConfig)
    store.store(group="trainer", name="trainer_schema", node=TrainerConfig)


def load(cfg: DictConfig) -> RunConfig:
    """Turn Hydra's composed config into validated dataclasses, once."""
    _reject_unknown_keys(cfg, "")
    try:
        run = OmegaConf.to_object(cfg)
    except ConfigError:
        raise
    except Exception as error:  # omegaconf's errors carry the full key; keep only the useful line
        key = getattr(error, "full_key", None)
        reason = str(error).splitlines()[0]
        raise ConfigError(f"invalid setting {key}: {reason}" if key else reason) from None
    if not isinstance(run, RunConfig):
        raise ConfigError("the composed config is not a RunConfig (is conf/train.yaml missing run_schema?)")
    if not isinstance(run.data, DataConfig):
        raise ConfigError("invalid setting data: choose a data recipe, e.g. data=pretrain_corpus")
    return run


def schema_defaults(run: RunConfig) -> dict[str, Any]:
    """Every setting's default in the schema of this run's recipes, flat ("trainer.group_by_length": False),
    with enums as their names, as a resolved config.yaml holds them."""
    flat: dict[str, Any] = {}

    def walk(node: Any, prefix: str) -> None:
        for spec in fields(node):
            value = getattr(node, spec.name)
            if is_dataclass(value):
                walk(value, f"{prefix}{spec.name}.")
            elif spec.default is not MISSING_FIELD:
                flat[prefix + spec.name] = str(spec.default) if isinstance(spec.default, StrEnum) else spec.default
            elif spec.default_factory is not MISSING_FIELD:
                flat[prefix + spec.name] = spec.default_factory()

    walk(run, "")
    return flat


def _reject_unknown_keys(node: DictConfig, prefix: str) -> None:
    """`+group.key=value` slips past Hydra's struct check; name such a key instead of failing obscurely."""
    schema = OmegaConf.get_type(node)
    known = {f.name for f in fields(schema)} if schema is not None and is_dataclass(schema) else None
    for key in node.keys():
        if key == "hydra":
            continue
        full = f"{prefix}{key}"
        if known is not None and key not in known:
            raise ConfigError(f"unknown setting {full} (known: {', '.join(sorted(known))})")
        child = node._get_node(key)
        if isinstance(child, DictConfig) and not child._is_missing() and not child._is_none():
            _reject_unknown_keys(child, f"{full}.")
