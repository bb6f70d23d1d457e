"""Optimizer and learning-rate schedule: AdamW without decay on biases and LayerNorm, warmup then decay."""

from __future__ import annotations

import math

import torch
from transformers import get_scheduler

from bertkit.settings import TrainerConfig


def build_optimizer(model: torch.nn.Module, cfg: TrainerConfig, device: torch.device) -> torch.optim.AdamW:
    """AdamW over two groups: weight matrices decay, biases and LayerNorm parameters do not."""
    decay: list[torch.nn.Parameter] = []
    no_decay: list[torch.nn.Parameter] = []
    for name, parameter in model.named_parameters():
        if not parameter.requires_grad:
            continue
        # One-dimensional parameters are biases and LayerNorm gains: decaying them only hurts.
        (no_decay if parameter.ndim < 2 or "LayerNorm" in name else decay).append(parameter)
    return torch.optim.AdamW(
        [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=cfg.learning_rate,
        betas=(cfg.adam_beta1, cfg.adam_beta2),
        eps=cfg.adam_epsilon,
        fused=device.type == "cuda" or None,
    )


def build_scheduler(
    optimizer: torch.optim.Optimizer, cfg: TrainerConfig, total_steps: int
) -> torch.optim.lr_scheduler.LRScheduler:
    """Linear warmup, then linear or cosine decay to zero (or constant) over total_steps."""
    warmup = cfg.warmup_steps or math.ceil(cfg.warmup_ratio * total_steps)
    return get_scheduler(str(cfg.lr_scheduler), optimizer, num_warmup_steps=warmup, num_training_steps=total_steps)
