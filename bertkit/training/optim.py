"""Optimizer and learning-rate schedule: AdamW without decay on biases and LayerNorm, optionally with layer-wise
learning-rate decay, warmup then decay."""

from __future__ import annotations

import logging
import math

import torch
from transformers import get_scheduler

from bertkit.core.errors import ConfigError
from bertkit.core.layers import layer_index
from bertkit.settings import SchedulerKind, TrainerConfig

log = logging.getLogger(__name__)


def decay_exponents(names: list[str], decay: float) -> dict[str, int]:
    """How many times each parameter's rate is multiplied by the decay: 0 for the head and the top layer, one
    more per layer below, the most for the embeddings. All 0 when there is no decay."""
    if decay == 1:
        return dict.fromkeys(names, 0)
    layers = {name: layer_index(name) for name in names}
    numbered = [index for index in layers.values() if index is not None and index >= 0]
    if not numbered:
        log.warning(
            "trainer.layer_lr_decay: the model has no numbered layers (ALBERT shares one layer across its depth); "
            "only its embeddings learn at a decayed rate"
        )
    top = max(numbered, default=0)
    return {name: top - min(top, index) if index is not None else 0 for name, index in layers.items()}


def parameter_groups(model: torch.nn.Module, cfg: TrainerConfig) -> list[dict]:
    """One group per (learning rate, weight decay): weight matrices decay, biases and LayerNorm gains do not;
    with layer_lr_decay < 1 each layer's rate is the one above it times the decay."""
    named = [(name, parameter) for name, parameter in model.named_parameters() if parameter.requires_grad]
    exponents = decay_exponents([name for name, _ in named], cfg.layer_lr_decay)
    groups: dict[tuple[int, bool], list[torch.nn.Parameter]] = {}
    for name, parameter in named:
        # One-dimensional parameters are biases and LayerNorm gains: decaying them only hurts.
        decays = not (parameter.ndim < 2 or "LayerNorm" in name)
        groups.setdefault((exponents[name], decays), []).append(parameter)
    if cfg.layer_lr_decay < 1:
        deepest = max(exponents.values())
        log.info(
            "Layer-wise learning-rate decay %g: the head and the top layer at %.3g, the embeddings at %.3g",
            cfg.layer_lr_decay, cfg.learning_rate, cfg.learning_rate * cfg.layer_lr_decay**deepest,
        )  # fmt: skip
    return [
        {
            "params": groups[key],
            "lr": cfg.learning_rate * cfg.layer_lr_decay ** key[0],
            "weight_decay": cfg.weight_decay if key[1] else 0.0,
        }
        for key in sorted(groups, key=lambda key: (key[0], not key[1]))  # the base rate's groups first
    ]


def build_optimizer(model: torch.nn.Module, cfg: TrainerConfig, device: torch.device) -> torch.optim.AdamW:
    """AdamW over the parameter groups."""
    return torch.optim.AdamW(
        parameter_groups(model, cfg),
        lr=cfg.learning_rate,
        betas=(cfg.adam_beta1, cfg.adam_beta2),
        eps=cfg.adam_epsilon,
        fused=device.type == "cuda" or None,
    )


def build_scheduler(
    optimizer: torch.optim.Optimizer, cfg: TrainerConfig, total_steps: int
) -> torch.optim.lr_scheduler.LRScheduler:
    """Linear warmup, then linear or cosine decay to zero, constant, or constant then a 1 - sqrt decay over the
    last decay_ratio of the steps (wsd); every group's rate follows the same curve, scaled by its own."""
    warmup = cfg.warmup_steps or math.ceil(cfg.warmup_ratio * total_steps)
    specific = {}
    if cfg.lr_scheduler == SchedulerKind.wsd:
        decay = math.ceil(cfg.decay_ratio * total_steps)
        if warmup + decay > total_steps:
            raise ConfigError(
                f"trainer.lr_scheduler=wsd: {warmup} warmup and {decay} decay steps (trainer.decay_ratio="
                f"{cfg.decay_ratio}) do not fit the {total_steps} training steps; lower trainer.decay_ratio or "
                "the warmup"
            )
        specific = {"num_decay_steps": decay, "decay_type": "1-sqrt"}
    return get_scheduler(
        str(cfg.lr_scheduler),
        optimizer,
        num_warmup_steps=warmup,
        num_training_steps=total_steps,
        scheduler_specific_kwargs=specific,
    )
