"""Model recipe: the task's head on a BERT, from scratch (preset sizes) or from a checkpoint."""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any, NamedTuple

import torch
import transformers
from transformers import AutoConfig, AutoTokenizer, BertConfig, PreTrainedModel, PreTrainedTokenizerBase

from bertkit.core.errors import ModelError, missing_checkpoint_message
from bertkit.core.task import Head, TaskSpec
from bertkit.settings import SIZES, ModelConfig

log = logging.getLogger(__name__)
HEAD_MODULES = ("pooler",)
"""Parts of the encoder that a checkpoint may lack or a model may leave out, as with task heads (a masked-LM
checkpoint has no pooler; token classification and QA models have none)."""


POSITION_IDS = "embeddings.position_ids"
"""A buffer that older checkpoints saved and newer code recomputes: left over, but not a weight."""


def _modules(keys: set[str]) -> list[str]:
    """Modules, not tensors: "classifier", "cls.predictions", "bert.encoder" (weights and biases alike)."""
    return sorted({".".join(key.rsplit(".", 1)[0].split(".")[:2]) for key in keys})


class BuiltModel(NamedTuple):
    model: PreTrainedModel
    fresh_modules: list[str]
    """Modules that start from random initialisation (task heads the checkpoint lacks), e.g. ["classifier"]."""


def architecture(cfg: ModelConfig) -> BertConfig:
    """The BERT configuration: read from the checkpoint's config.json, or built from the preset sizes."""
    if cfg.name_or_path is None:
        sizes = {key: getattr(cfg, key) for key in SIZES}
        return BertConfig(
            **sizes,
            hidden_dropout_prob=cfg.hidden_dropout_prob,
            attention_probs_dropout_prob=cfg.attention_probs_dropout_prob,
        )
    try:
        config = AutoConfig.from_pretrained(cfg.name_or_path, trust_remote_code=cfg.trust_remote_code)
    except (OSError, ValueError) as error:
        raise ModelError(missing_checkpoint_message("model.name_or_path", cfg.name_or_path, error)) from None
    if not isinstance(config, BertConfig) or config.model_type != "bert":
        kind = ", ".join(getattr(config, "architectures", None) or []) or type(config).__name__
        raise ModelError(
            f"model.name_or_path={cfg.name_or_path!r} is a {config.model_type} checkpoint ({kind}), not a BERT; "
            "its weights would not load into the BERT that bertkit trains: choose a BERT checkpoint"
        )
    config.hidden_dropout_prob = cfg.hidden_dropout_prob
    config.attention_probs_dropout_prob = cfg.attention_probs_dropout_prob
    return config


def with_checkpoint_sizes(cfg: ModelConfig, config: BertConfig) -> ModelConfig:
    """The model settings with the sizes the checkpoint really has, so that records tell what was trained."""
    if cfg.name_or_path is None:
        return cfg
    return replace(cfg, **{key: getattr(config, key) for key in SIZES})


def check_sequence_length(config: BertConfig, max_seq_length: int, setting: str = "data.max_seq_length") -> None:
    """Fail before any work when sequences would not fit the position embeddings."""
    if max_seq_length > config.max_position_embeddings:
        raise ModelError(
            f"{setting}={max_seq_length} is larger than the model's max_position_embeddings="
            f"{config.max_position_embeddings}; lower {setting}"
        )


def build_model(cfg: ModelConfig, spec: TaskSpec, head: Head, evaluate_only: bool = False) -> BuiltModel:
    """The task's head on the configured BERT, in float32 (mixed precision is applied by Accelerate, not baked in)."""
    config = architecture(cfg)
    check_sequence_length(config, spec.max_seq_length)
    if cfg.name_or_path is None:
        config.vocab_size = spec.vocab_size
        config.pad_token_id = spec.pad_token_id
    config._attn_implementation = str(cfg.attn_implementation)
    for name, value in head.config.items():
        setattr(config, name, value)
    if cfg.name_or_path is None:
        if evaluate_only:
            raise ModelError("trainer.max_steps=0 evaluates model.name_or_path as it is, and none is set")
        return BuiltModel(head.model_class(config), [])
    built = _from_checkpoint(cfg, head, config)
    if evaluate_only and built.fresh_modules:
        raise ModelError(
            f"trainer.max_steps=0 evaluates model.name_or_path={cfg.name_or_path!r} as it is, but it has no "
            f"weights for {', '.join(built.fresh_modules)}: a random head cannot be evaluated; train it first "
            "(unset trainer.max_steps), or give a checkpoint fine-tuned for this task"
        )
    return built


def _from_checkpoint(cfg: ModelConfig, head: Head, config: BertConfig) -> BuiltModel:
    """The checkpoint's weights in the head's class. Only task heads may start fresh (and it is said); an
    encoder the checkpoint does not fill stops the run."""
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
    fresh_modules = _modules(set(info["missing_keys"]) | {key for key, *_ in info["mismatched_keys"]})
    encoder = model.base_model_prefix
    unfilled = [m for m in fresh_modules if m.startswith(f"{encoder}.") and m.split(".")[1] not in HEAD_MODULES]
    # Weights of the encoder left over (say, more layers than config.json names) would be dropped silently.
    unexpected = {key for key in info["unexpected_keys"] if not key.endswith(POSITION_IDS)}
    left_over = [m for m in _modules(unexpected) if m.startswith(f"{encoder}.") and m.split(".")[1] not in HEAD_MODULES]
    problems = [f"has no usable weights for {', '.join(unfilled)}"] if unfilled else []
    problems += [f"has weights left over for {', '.join(left_over)}"] if left_over else []
    if problems:
        kind = ", ".join(getattr(config, "architectures", None) or []) or "no architecture named"
        raise ModelError(
            f"model.name_or_path={cfg.name_or_path!r} ({kind}) {' and '.join(problems)}: its weights do not fit "
            "this BERT as its config.json describes it; choose a checkpoint of this architecture"
        )
    if fresh_modules:
        log.warning(
            "%s has no weights for %s: they start from random initialisation and are trained in this run",
            cfg.name_or_path,
            ", ".join(fresh_modules),
        )
    return BuiltModel(model, fresh_modules)


def load_trained(model_dir: str) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """A trained model folder (or Hub id) in the transformers class its config.json names, in eval mode, with
    its tokenizer; what cannot be read is one line naming MODEL_DIR."""
    try:
        config = AutoConfig.from_pretrained(model_dir)
        tokenizer = AutoTokenizer.from_pretrained(model_dir)
    except (OSError, ValueError) as error:
        raise ModelError(missing_checkpoint_message("MODEL_DIR", model_dir, error)) from None
    architecture = (getattr(config, "architectures", None) or [None])[0]
    model_class = getattr(transformers, architecture, None) if architecture else None
    if model_class is None:
        raise ModelError(f"MODEL_DIR={model_dir!r}: config.json names no transformers model class (architectures)")
    model = model_class.from_pretrained(model_dir, dtype=torch.float32).eval()
    return model, tokenizer
