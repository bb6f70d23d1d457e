"""Model recipe: the task's head on an encoder: a BERT from scratch (preset sizes), or any checkpoint the task's
Auto class loads (BERT, RoBERTa, DistilBERT, ALBERT, ELECTRA, DeBERTa-v2/v3, XLM-RoBERTa, ModernBERT, ...)."""

from __future__ import annotations

import copy
import logging
from dataclasses import replace
from typing import Any, NamedTuple

import torch
import transformers
from transformers import (
    AutoConfig,
    AutoTokenizer,
    BertConfig,
    ModernBertConfig,
    PretrainedConfig,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from bertkit.core.errors import ModelError, missing_checkpoint_message
from bertkit.core.layers import renumbered
from bertkit.core.task import Head, TaskSpec
from bertkit.packing import enable_packing
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


DROPOUT_NAMES = {
    # model type: the config's names of (model.hidden_dropout_prob, model.attention_probs_dropout_prob)
    "distilbert": ("dropout", "attention_dropout"),
    "modernbert": ("mlp_dropout", "attention_dropout"),
}
"""Architectures whose configs name dropout otherwise than BERT's hidden_dropout_prob, attention_probs_dropout_prob."""


def architecture(cfg: ModelConfig) -> PretrainedConfig:
    """The encoder's configuration: read from the checkpoint's config.json (any architecture), or a BERT built
    from the preset sizes; the dropout settings, where given, under the architecture's own names."""
    if cfg.name_or_path is None:
        config = _from_scratch(cfg)
    else:
        try:
            config = AutoConfig.from_pretrained(cfg.name_or_path, trust_remote_code=cfg.trust_remote_code)
        except (OSError, ValueError) as error:
            raise ModelError(missing_checkpoint_message("model.name_or_path", cfg.name_or_path, error)) from None
    if cfg.keep_layers is not None:
        _keep_layers_of(config, cfg.keep_layers)
    hidden, attention = _dropout_names(config)
    for name, value in ((hidden, cfg.hidden_dropout_prob), (attention, cfg.attention_probs_dropout_prob)):
        if value is not None and hasattr(config, name):
            setattr(config, name, value)
        elif value is not None:
            log.warning("%s configs have no %s: the dropout setting is not applied", config.model_type, name)
    return config


def _from_scratch(cfg: ModelConfig) -> PretrainedConfig:
    """The configuration of an encoder built from the preset sizes: BERT's, or ModernBERT's (which has no
    token types)."""
    sizes = {key: getattr(cfg, key) for key in SIZES}
    if cfg.architecture == "modernbert":
        del sizes["type_vocab_size"]
        return ModernBertConfig(**sizes)
    return BertConfig(**sizes)


def _dropout_names(config: PretrainedConfig) -> tuple[str, str]:
    return DROPOUT_NAMES.get(config.model_type, ("hidden_dropout_prob", "attention_probs_dropout_prob"))


def has_dropout(config: PretrainedConfig) -> bool:
    """Whether the encoder drops anything out in training (hidden or attention dropout above 0)."""
    return any(float(getattr(config, name, 0.0) or 0.0) > 0 for name in _dropout_names(config))


def _keep_layers_of(config: PretrainedConfig, keep: list[int]) -> None:
    """The configuration of the smaller model: its depth, and the kinds of its layers where the architecture
    lists them (ModernBERT's global and local attention), as the kept layers had them."""
    depth = config.num_hidden_layers
    if config.model_type == "albert" or max(keep) >= depth:
        reason = "ALBERT shares one layer across its depth" if config.model_type == "albert" else f"it has {depth}"
        raise ModelError(f"model.keep_layers={keep} cannot be kept of this checkpoint: {reason}")
    config.num_hidden_layers = len(keep)
    if isinstance(getattr(config, "layer_types", None), list):
        config.layer_types = [config.layer_types[index] for index in keep]


def check_encoder(cfg: ModelConfig, config: PretrainedConfig, encoder_types: frozenset[str] | None) -> None:
    """Before any work: a task whose head exists for some architectures only (pretraining's) refuses another
    architecture, whose weights would not load into it."""
    if encoder_types is None or config.model_type in encoder_types:
        return
    accepted = " or ".join(_NAMES.get(kind, kind) for kind in sorted(encoder_types))
    if cfg.name_or_path is None:
        raise ModelError(
            f"model.architecture={cfg.architecture}: this task trains a {accepted} (data.objective=mlm trains either)"
        )
    kind = ", ".join(getattr(config, "architectures", None) or []) or type(config).__name__
    raise ModelError(
        f"model.name_or_path={cfg.name_or_path!r} is a {config.model_type} checkpoint ({kind}); this task "
        f"trains a {accepted}: choose a {accepted} checkpoint (fine-tuning tasks take any encoder)"
    )


_NAMES = {"bert": "BERT", "modernbert": "ModernBERT"}


def position_limit(config: PretrainedConfig) -> int:
    """Tokens a sequence may hold: the position embeddings, less those RoBERTa's kind reserves (positions count
    from padding_idx + 1)."""
    reserved = config.pad_token_id + 1 if config.model_type in ("roberta", "xlm-roberta", "camembert") else 0
    return int(config.max_position_embeddings) - reserved


def with_checkpoint_sizes(cfg: ModelConfig, config: PretrainedConfig) -> ModelConfig:
    """The model settings with the sizes the checkpoint really has (None where its architecture has no such
    size), so that records tell what was trained."""
    if cfg.name_or_path is None:
        return cfg
    sizes: dict[str, Any] = {key: getattr(config, key, None) for key in SIZES}
    return replace(cfg, **sizes, architecture=config.model_type)


def check_sequence_length(config: PretrainedConfig, max_seq_length: int, setting: str = "data.max_seq_length") -> None:
    """Fail before any work when sequences would not fit the position embeddings."""
    limit = position_limit(config)
    if max_seq_length > limit:
        raise ModelError(
            f"{setting}={max_seq_length} is larger than the {limit} positions the model embeds "
            f"(max_position_embeddings={config.max_position_embeddings}); lower {setting}"
        )


def _attention(cfg: ModelConfig, head: Head, config: PretrainedConfig) -> str:
    """model.attn_implementation, or eager for an architecture without SDPA support (DeBERTa-v2's kind)."""
    wanted = str(cfg.attn_implementation)
    mapping = getattr(head.model_class, "_model_mapping", None)  # an Auto class: the class it picks
    model_class = mapping[type(config)] if mapping is not None and type(config) in mapping else head.model_class
    if wanted == "sdpa" and not getattr(model_class, "_supports_sdpa", False):
        log.info("%s has no SDPA attention; using eager attention", getattr(model_class, "__name__", model_class))
        return "eager"
    return wanted


def _instance(model_class: Any, config: PretrainedConfig) -> PreTrainedModel:
    """A randomly initialised model of a class: an Auto class builds the one its mapping names for the config."""
    return model_class.from_config(config) if hasattr(model_class, "from_config") else model_class(config)


def build_model(
    cfg: ModelConfig, spec: TaskSpec, head: Head, evaluate_only: bool = False, packing: bool = False
) -> BuiltModel:
    """The task's head on the configured encoder, in float32 (mixed precision is applied by Accelerate, not
    baked in); with `packing`, its encoder runs on packed rows (bertkit.packing)."""
    built = _built(cfg, spec, head, evaluate_only)
    if packing:
        enable_packing(built.model, longest_row=spec.max_seq_length)
    return built


def _built(cfg: ModelConfig, spec: TaskSpec, head: Head, evaluate_only: bool) -> BuiltModel:
    config = architecture(cfg)
    check_sequence_length(config, spec.max_seq_length)
    if cfg.name_or_path is None:
        _use_vocabulary(config, spec)
    config._attn_implementation = _attention(cfg, head, config)
    for name, value in head.config.items():
        setattr(config, name, value)
    if cfg.name_or_path is None:
        if evaluate_only:
            raise ModelError("trainer.max_steps=0 evaluates model.name_or_path as it is, and none is set")
        return BuiltModel(_instance(head.model_class, config), [])
    built = _from_checkpoint(cfg, head, config)
    if evaluate_only and built.fresh_modules:
        raise ModelError(
            f"trainer.max_steps=0 evaluates model.name_or_path={cfg.name_or_path!r} as it is, but it has no "
            f"weights for {', '.join(built.fresh_modules)}: a random head cannot be evaluated; train it first "
            "(unset trainer.max_steps), or give a checkpoint fine-tuned for this task"
        )
    return built


def _use_vocabulary(config: PretrainedConfig, spec: TaskSpec) -> None:
    """A model from scratch takes the tokenizer's size and special tokens (ModernBERT's config names its
    [CLS] and [SEP] as bos/cls and eos/sep; defaults from another vocabulary would point outside this one)."""
    config.vocab_size = spec.vocab_size
    config.pad_token_id = spec.pad_token_id
    for names, token_id in ((("cls_token_id", "bos_token_id"), spec.cls_token_id),
                            (("sep_token_id", "eos_token_id"), spec.sep_token_id)):  # fmt: skip
        for name in names:
            if getattr(config, name, None) is not None:
                setattr(config, name, token_id)


def _from_checkpoint(cfg: ModelConfig, head: Head, config: PretrainedConfig) -> BuiltModel:
    """The checkpoint's weights in the head's class (of its kept layers only, with model.keep_layers)."""
    if cfg.keep_layers is None:
        return _load(cfg, head, config)
    whole = copy.deepcopy(config)  # the head's settings and the attention as the smaller model has them
    original = AutoConfig.from_pretrained(cfg.name_or_path, trust_remote_code=cfg.trust_remote_code)
    whole.num_hidden_layers = original.num_hidden_layers
    if isinstance(getattr(original, "layer_types", None), list):
        whole.layer_types = original.layer_types
    loaded = _load(cfg, head, whole)
    log.info("Keeping layers %s of the %d of %s", cfg.keep_layers, whole.num_hidden_layers, cfg.name_or_path)
    return BuiltModel(_kept(loaded.model, cfg.keep_layers, config), loaded.fresh_modules)


def _kept(model: PreTrainedModel, keep: list[int], config: PretrainedConfig) -> PreTrainedModel:
    """A model of `config` holding the kept layers of `model`, renumbered in order, and all its other weights."""
    new_index = {old: new for new, old in enumerate(keep)}
    state = {}
    for name, value in model.state_dict().items():
        kept_name = renumbered(name, new_index)
        if kept_name is not None:
            state[kept_name] = value
    smaller = type(model)(config)
    result = smaller.load_state_dict(state, strict=False)
    if result.missing_keys:
        raise ModelError(f"model.keep_layers={keep}: no weights for {', '.join(result.missing_keys[:3])}")
    if result.unexpected_keys:  # e.g. ModernBERT's first layer has no attention norm: the kept one's is left out
        log.warning(
            "model.keep_layers=%s: the smaller model has no place for %s", keep, ", ".join(result.unexpected_keys)
        )
    return smaller


def _load(cfg: ModelConfig, head: Head, config: PretrainedConfig) -> BuiltModel:
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
            "this model as its config.json describes it; choose a checkpoint of this architecture"
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
