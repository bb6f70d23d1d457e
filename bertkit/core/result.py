"""What a training run produced, as the artifact writers receive it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch


@dataclass
class TrainResult:
    """The model, final scores and predictions per split, the evaluation history and throughput."""

    model: torch.nn.Module
    """The unwrapped model."""
    state_dict: dict[str, torch.Tensor] | None
    """Its full weights, gathered across processes (FSDP and DeepSpeed shard them); None off the main process."""
    scores: dict[str, dict[str, Any]]
    history: list[dict[str, Any]] = field(default_factory=list)
    throughput: dict[str, Any] = field(default_factory=dict)
    predictions: dict[str, Any] = field(default_factory=dict)
    """The final model's decoded predictions on every evaluation and prediction split (main process)."""
    best: dict[str, Any] | None = None
    """{"step", "metric", "value"} of the best evaluation, whose weights the model holds; None without
    evaluations during training."""
    stopped_early: dict[str, Any] | None = None
    """{"step", "reason"} when early stopping ended training."""
