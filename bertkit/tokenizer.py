"""The tokenizer: loaded from a folder or Hub id, or a WordPiece vocabulary trained on the corpus."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import socket
from collections.abc import Callable, Iterator
from dataclasses import asdict
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import AutoTokenizer, BertTokenizer, PretrainedConfig, PreTrainedTokenizerBase

from bertkit.core.errors import ModelError, missing_checkpoint_message
from bertkit.settings import ModelConfig, TokenizerConfig
from bertkit.tasks.base import TrainingText

log = logging.getLogger(__name__)
SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
CONTINUATION = "##"  # WordPiece's prefix of a piece that continues a word
TOKENIZER_FILES = (
    "tokenizer.json",
    "vocab.txt",
    "tokenizer_config.json",
    "vocab.json",
    "spiece.model",
    "sentencepiece.bpe.model",
)
_FORMAT_VERSION = 2  # bump when the way a vocabulary is trained changes, to retire old caches


def build(
    tok_cfg: TokenizerConfig, model_cfg: ModelConfig, text: Callable[[], TrainingText | None], cache_dir: Path
) -> PreTrainedTokenizerBase:
    """The configured tokenizer, the checkpoint's, or a WordPiece vocabulary trained on the task's text
    (`text` is asked for only then: reading a corpus takes time)."""
    if tok_cfg.name_or_path is not None:
        return load(tok_cfg.name_or_path, "tokenizer.name_or_path", model_cfg.trust_remote_code)
    if model_cfg.name_or_path is not None:
        return load(model_cfg.name_or_path, "model.name_or_path", model_cfg.trust_remote_code)
    corpus = text()
    if corpus is None:
        raise ModelError(
            "a model trained from scratch needs a tokenizer: set tokenizer.name_or_path or model.name_or_path"
        )
    return train_wordpiece(tok_cfg, corpus, cache_dir)


def load(name_or_path: str, setting: str, trust_remote_code: bool = False) -> PreTrainedTokenizerBase:
    """A fast tokenizer from a folder or the Hub; a missing one names the setting to fix."""
    folder = Path(name_or_path).expanduser()
    if folder.is_dir() and not has_tokenizer_files(folder):
        raise ModelError(
            f"{setting}={name_or_path!r}: this folder holds no tokenizer ({', '.join(TOKENIZER_FILES[:2])}, ...); "
            "set tokenizer.name_or_path to the tokenizer its model was trained with"
        )
    try:
        tokenizer = AutoTokenizer.from_pretrained(name_or_path, trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as error:
        raise ModelError(missing_checkpoint_message(setting, name_or_path, error, "tokenizer")) from None
    if not tokenizer.is_fast:
        raise ModelError(f"{setting}={name_or_path!r}: bertkit needs a fast (Rust) tokenizer")
    return tokenizer


def fit_inputs(tokenizer: PreTrainedTokenizerBase, config: PretrainedConfig) -> None:
    """Token type ids only for a model with type embeddings (not DistilBERT's or ModernBERT's kind, nor
    DeBERTa-v3's type_vocab_size=0): the tokenizer stops returning them otherwise."""
    if not getattr(config, "type_vocab_size", 0) and "token_type_ids" in tokenizer.model_input_names:
        names = [name for name in tokenizer.model_input_names if name != "token_type_ids"]
        tokenizer.model_input_names = names
        tokenizer.init_kwargs["model_input_names"] = names  # saved with it: pipelines on model/ agree


def check_fits(
    cfg: ModelConfig, tokenizer_setting: str | None, tokenizer: PreTrainedTokenizerBase, config: PretrainedConfig
) -> None:
    """Stop before tokenizing when the tokenizer does not fit the checkpoint: more tokens than it embeds,
    another vocabulary than its own, or other special-token ids. (A checkpoint's own tokenizer may have
    fewer tokens than it embeds: some pad their embedding matrix to a round size.)"""
    if cfg.name_or_path is None:
        return
    if len(tokenizer) > config.vocab_size:
        raise ModelError(
            f"the tokenizer has {len(tokenizer)} tokens but model.name_or_path={cfg.name_or_path!r} embeds "
            f"only {config.vocab_size}; use the checkpoint's own tokenizer (unset tokenizer.name_or_path)"
        )
    if config.pad_token_id is not None and tokenizer.pad_token_id != config.pad_token_id:
        raise ModelError(
            f"the tokenizer's [PAD] is id {tokenizer.pad_token_id} but model.name_or_path={cfg.name_or_path!r} "
            f"pads with id {config.pad_token_id}; use the checkpoint's own tokenizer"
        )
    if tokenizer_setting is None or tokenizer_setting == cfg.name_or_path:
        return
    own = _own_tokenizer(cfg)
    if own is None and len(tokenizer) != config.vocab_size:
        raise ModelError(
            f"tokenizer.name_or_path={tokenizer_setting!r} has {len(tokenizer)} tokens but model.name_or_path="
            f"{cfg.name_or_path!r} embeds {config.vocab_size}: they do not belong together"
        )
    if own is not None and own.get_vocab() != tokenizer.get_vocab():
        raise ModelError(
            f"tokenizer.name_or_path={tokenizer_setting!r} ({_describe(tokenizer)}) is not the vocabulary of "
            f"model.name_or_path={cfg.name_or_path!r} ({_describe(own)}); unset tokenizer.name_or_path to use "
            "the checkpoint's own"
        )


def _own_tokenizer(cfg: ModelConfig) -> PreTrainedTokenizerBase | None:
    assert cfg.name_or_path is not None
    if Path(cfg.name_or_path).expanduser().is_dir() and not has_tokenizer_files(Path(cfg.name_or_path).expanduser()):
        return None  # a checkpoint without a tokenizer: only its sizes can be compared
    try:
        return AutoTokenizer.from_pretrained(cfg.name_or_path, trust_remote_code=cfg.trust_remote_code)
    except (OSError, ValueError):
        return None


def _describe(tokenizer: PreTrainedTokenizerBase) -> str:
    specials = ", ".join(
        f"{token}={tokenizer.convert_tokens_to_ids(token)}"
        for token in (tokenizer.cls_token, tokenizer.sep_token, tokenizer.mask_token)
        if token is not None
    )
    return f"{len(tokenizer):,} tokens, {specials}"


def has_tokenizer_files(folder: Path) -> bool:
    """Whether a folder holds a tokenizer (transformers would otherwise build an empty one from config.json)."""
    return any((folder / name).is_file() for name in TOKENIZER_FILES)


def train_wordpiece(tok_cfg: TokenizerConfig, text: TrainingText, cache_dir: Path) -> PreTrainedTokenizerBase:
    """Train (or reuse from the cache) an uncased WordPiece vocabulary with BERT's special tokens."""
    key = hashlib.sha256(
        json.dumps([_FORMAT_VERSION, text.fingerprint, asdict(tok_cfg)], default=str).encode()
    ).hexdigest()[:16]
    folder = cache_dir / "tokenizers" / key
    if (folder / "tokenizer.json").exists():
        return AutoTokenizer.from_pretrained(folder)
    counted = "a stream of" if text.documents is None else f"{text.documents}"
    log.info("Training a WordPiece vocabulary of %d on %s documents", tok_cfg.vocab_size, counted)
    return _saved(_bert_tokenizer(_trained_wordpiece(tok_cfg, text), tok_cfg), folder)


def _trained_wordpiece(tok_cfg: TokenizerConfig, text: TrainingText) -> Tokenizer:
    wordpiece = Tokenizer(models.WordPiece(unk_token="[UNK]", max_input_chars_per_word=100))
    wordpiece.normalizer = normalizers.BertNormalizer(
        clean_text=True,
        handle_chinese_chars=True,
        strip_accents=tok_cfg.lowercase,
        lowercase=tok_cfg.lowercase,
    )
    wordpiece.pre_tokenizer = pre_tokenizers.BertPreTokenizer()

    # tokenizers' trainer numbers the "##x" pieces in hash-map order, and those numbers break ties between
    # merges of equal count, so the same corpus gives another vocabulary on every run
    # (huggingface/tokenizers#1794). Registered first, as special tokens, they get fixed numbers; they are
    # made ordinary vocabulary entries again below.
    continuations = [CONTINUATION + c for c in sorted(_continuation_alphabet(wordpiece, text.sentence_batches()))]
    trainer = trainers.WordPieceTrainer(
        vocab_size=tok_cfg.vocab_size,
        min_frequency=tok_cfg.min_frequency,
        special_tokens=SPECIAL_TOKENS + continuations,
        continuing_subword_prefix=CONTINUATION,
    )
    wordpiece.train_from_iterator(text.sentence_batches(), trainer=trainer)
    return _only_bert_specials(wordpiece)


def _bert_tokenizer(wordpiece: Tokenizer, tok_cfg: TokenizerConfig) -> PreTrainedTokenizerBase:
    """The trained vocabulary as a BERT tokenizer: [CLS] A [SEP] B [SEP] templates, WordPiece decoding."""
    cls_id, sep_id = wordpiece.token_to_id("[CLS]"), wordpiece.token_to_id("[SEP]")
    wordpiece.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)],
    )
    wordpiece.decoder = decoders.WordPiece(prefix=CONTINUATION)
    tokenizer = BertTokenizer(  # Rust-backed: transformers 5's BertTokenizerFast is this class
        tokenizer_object=wordpiece,
        do_lower_case=tok_cfg.lowercase,
        unk_token="[UNK]",
        sep_token="[SEP]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        mask_token="[MASK]",
        model_max_length=512,
    )
    return tokenizer


def _saved(tokenizer: PreTrainedTokenizerBase, folder: Path) -> PreTrainedTokenizerBase:
    # A staging folder of this process's own: machines preparing shards may train the same vocabulary into one
    # shared cache at once. A crash mid-save never leaves a half-written tokenizer in the cache.
    staging = folder.with_name(f"{folder.name}.{socket.gethostname()}.{os.getpid()}.tmp")
    tokenizer.save_pretrained(staging)
    try:
        staging.replace(folder)
    except OSError:
        if not (folder / "tokenizer.json").is_file():
            raise
        shutil.rmtree(staging)  # another process saved the same vocabulary first
    return AutoTokenizer.from_pretrained(folder)


def _continuation_alphabet(wordpiece: Tokenizer, batches: Iterator[list[str]]) -> set[str]:
    """Characters that occur inside a word (not first) once normalized and pre-tokenized: the trainer
    makes a "##x" piece of each."""
    found: set[str] = set()
    for batch in batches:
        for sentence in batch:
            for word, _ in wordpiece.pre_tokenizer.pre_tokenize_str(wordpiece.normalizer.normalize_str(sentence)):
                found.update(word[1:])
    return found


def _only_bert_specials(wordpiece: Tokenizer) -> Tokenizer:
    """The trained tokenizer with only BERT's special tokens as added tokens (the "##x" pieces registered
    to fix their numbers stay in the vocabulary, as ordinary pieces)."""
    spec = json.loads(wordpiece.to_str())
    spec["added_tokens"] = [token for token in spec["added_tokens"] if token["content"] in SPECIAL_TOKENS]
    return Tokenizer.from_str(json.dumps(spec))
