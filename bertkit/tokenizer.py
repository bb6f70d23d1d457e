"""The tokenizer: loaded from a folder or Hub id, or a WordPiece vocabulary trained on the corpus."""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import asdict
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import AutoTokenizer, BertTokenizerFast, PreTrainedTokenizerBase

from bertkit.config import DataConfig, ModelConfig, PretrainCorpusConfig, TokenizerConfig
from bertkit.data.corpus import SENTENCES, load_documents
from bertkit.errors import ModelError

log = logging.getLogger(__name__)
SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
_FORMAT_VERSION = 1  # bump when the way a vocabulary is trained changes, to retire old caches


def build(
    tok_cfg: TokenizerConfig, model_cfg: ModelConfig, data_cfg: DataConfig, cache_dir: Path
) -> PreTrainedTokenizerBase:
    """The configured tokenizer, the checkpoint's, or a WordPiece vocabulary trained on the corpus."""
    if tok_cfg.name_or_path is not None:
        return load(tok_cfg.name_or_path, "tokenizer.name_or_path", model_cfg.trust_remote_code)
    if model_cfg.name_or_path is not None:
        return load(model_cfg.name_or_path, "model.name_or_path", model_cfg.trust_remote_code)
    if not isinstance(data_cfg, PretrainCorpusConfig):
        raise ModelError(
            "a model trained from scratch needs a tokenizer: set tokenizer.name_or_path or model.name_or_path"
        )
    return train_wordpiece(tok_cfg, data_cfg, cache_dir)


def load(name_or_path: str, setting: str, trust_remote_code: bool = False) -> PreTrainedTokenizerBase:
    """A fast tokenizer from a folder or the Hub; a missing one names the setting to fix."""
    try:
        tokenizer = AutoTokenizer.from_pretrained(name_or_path, trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as error:
        where = "folder" if Path(name_or_path).exists() else "folder or Hub id"
        raise ModelError(
            f"{setting}={name_or_path!r}: no tokenizer could be loaded from this {where} ({str(error).splitlines()[0]})"
        ) from None
    if not tokenizer.is_fast:
        raise ModelError(f"{setting}={name_or_path!r}: bertkit needs a fast (Rust) tokenizer")
    return tokenizer


def train_wordpiece(
    tok_cfg: TokenizerConfig, data_cfg: PretrainCorpusConfig, cache_dir: Path
) -> PreTrainedTokenizerBase:
    """Train (or reuse from the cache) an uncased WordPiece vocabulary with BERT's special tokens."""
    documents = load_documents(data_cfg, cache_dir)
    key = hashlib.sha256(
        json.dumps([_FORMAT_VERSION, documents._fingerprint, asdict(tok_cfg)], default=str).encode()
    ).hexdigest()[:16]
    folder = cache_dir / "tokenizers" / key
    if (folder / "tokenizer.json").exists():
        return AutoTokenizer.from_pretrained(folder)

    log.info("Training a WordPiece vocabulary of %d on %d documents", tok_cfg.vocab_size, len(documents))
    wordpiece = Tokenizer(models.WordPiece(unk_token="[UNK]", max_input_chars_per_word=100))
    wordpiece.normalizer = normalizers.BertNormalizer(
        clean_text=True,
        handle_chinese_chars=True,
        strip_accents=tok_cfg.lowercase,
        lowercase=tok_cfg.lowercase,
    )
    wordpiece.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    trainer = trainers.WordPieceTrainer(
        vocab_size=tok_cfg.vocab_size,
        min_frequency=tok_cfg.min_frequency,
        special_tokens=SPECIAL_TOKENS,
        continuing_subword_prefix="##",
    )

    def batches():
        for start in range(0, len(documents), 256):
            yield [s for doc in documents[start : start + 256][SENTENCES] for s in doc]

    wordpiece.train_from_iterator(batches(), trainer=trainer)
    cls_id, sep_id = wordpiece.token_to_id("[CLS]"), wordpiece.token_to_id("[SEP]")
    wordpiece.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)],
    )
    wordpiece.decoder = decoders.WordPiece(prefix="##")
    tokenizer = BertTokenizerFast(
        tokenizer_object=wordpiece,
        do_lower_case=tok_cfg.lowercase,
        unk_token="[UNK]",
        sep_token="[SEP]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        mask_token="[MASK]",
        model_max_length=512,
    )
    staging = folder.with_name(folder.name + ".tmp")
    tokenizer.save_pretrained(staging)
    staging.replace(folder)  # a crash mid-save never leaves a half-written tokenizer in the cache
    return AutoTokenizer.from_pretrained(folder)
