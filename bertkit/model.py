"""Model recipe: the task's head on a BERT, from scratch (preset sizes) or from a checkpoint."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
from transformers import BertConfig, PreTrainedModel

from bertkit.core.errors import ModelError, first_line, unreachable_checkpoint_hint
from bertkit.core.task import Head, TaskSpec
from bertkit.settings import ModelConfig

log = logging.getLogger(__name__)


def architecture(cfg: ModelConfig) -> BertConfig:
    """The BERT configuration: read from the checkpoint's config.json, or built from the preset sizes."""
    if cfg.name_or_path is None:
        return BertConfig(
            hidden_size=cfg.hidden_size,
            num_hidden_layers=cfg.num_hidden_layers,
            num_attention_heads=cfg.num_attention_heads,
            intermediate_size=cfg.intermediate_size,
            max_position_embeddings=cfg.max_position_embeddings,
            type_vocab_size=cfg.type_vocab_size,
            hidden_dropout_prob=cfg.hidden_dropout_prob,
            attention_probs_dropout_prob=cfg.attention_probs_dropout_prob,
            initializer_range=cfg.initializer_range,
        )
    try:
        config = BertConfig.from_pretrained(cfg.name_or_path)
    except (OSError, ValueError) as error:
        where = "folder" if Path(cfg.name_or_path).exists() else "folder or Hub id"
        raise ModelError(
            f"model.name_or_path={cfg.name_or_path!r}: no BERT config.json could be read from this {where} "
            f"({first_line(error)}){unreachable_checkpoint_hint(cfg.name_or_path)}"
        ) from None
    config.hidden_dropout_prob = cfg.hidden_dropout_prob
    config.attention_probs_dropout_prob = cfg.attention_probs_dropout_prob
    return config


def check_sequence_length(config: BertConfig, max_seq_length: int, setting: str = "data.max_seq_length") -> None:
    """Fail before any work when sequences would not fit the position embeddings."""
    if max_seq_length > config.max_position_embeddings:
        raise ModelError(
            f"{setting}={max_seq_length} is larger than the model's max_position_embeddings="
            f"{config.max_position_embeddings}; lower {setting}"
        )


def build_model(cfg: ModelConfig, spec: TaskSpec, head: Head) -> PreTrainedModel:
    """The task's head on the configured BERT, in float32 (mixed precision is applied by Accelerate, not baked in)."""
    config = architecture(cfg)
    check_sequence_length(config, spec.max_seq_length)
    if cfg.name_or_path is None:
        config.vocab_size = spec.vocab_size
        config.pad_token_id = spec.pad_token_id
    elif spec.vocab_size > config.vocab_size:
        raise ModelError(
            f"the tokenizer has {spec.vocab_size} tokens but model.name_or_path={cfg.name_or_path!r} embeds "
            f"only {config.vocab_size}; use the checkpoint's own tokenizer (unset tokenizer.name_or_path)"
        )
    config._attn_implementation = str(cfg.attn_implementation)
    for name, value in head.config.items():
        setattr(config, name, value)
    if cfg.name_or_path is None:
        return head.model_class(config)
    return _from_checkpoint(cfg, head, config)


def _from_checkpoint(cfg: ModelConfig, head: Head, config: BertConfig) -> PreTrainedModel:
    """The checkpoint's weights in the head's class; what it lacks (a new task head) starts fresh, and is said."""
    assert cfg.name_or_path is not None
    model: PreTrainedModel
    info: dict[str, Any]
    model, info = head.model_class.from_pretrained(  # a pair, with output_loading_info
        cfg.name_or_path,
        config=config,
        dtype=torch.float32,
        output_loading_info=True,
        trust_remote_code=cfg.trust_remote_code,
        # A checkpoint fine-tuned on another task has a head of another size: it is replaced, and said so.
        ignore_mismatched_sizes=True,
    )
    fresh = set(info["missing_keys"]) | {key for key, *_ in info["mismatched_keys"]}
    # Name modules, not tensors: "classifier", "cls.predictions" (weights and biases alike).
    fresh_modules = sorted({".".join(key.rsplit(".", 1)[0].split(".")[:2]) for key in fresh})
    if fresh_modules:
        log.warning(
            "%s has no weights for %s: they start from random initialisation and are trained in this run",
            cfg.name_or_path,
            ", ".join(fresh_modules),
        )
    return model
