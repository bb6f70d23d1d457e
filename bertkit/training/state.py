"""Where training stands: saved in every checkpoint (as JSON) so a restart continues from the same batch."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass
class LoopState:
    step: int = 0
    """Optimizer steps taken."""
    epoch: int = 0
    batch_in_epoch: int = 0
    """Micro-batches of the current epoch already trained on."""
    tokens: int = 0
    samples: int = 0
    train_seconds: float = 0.0
    eval_seconds: float = 0.0
    """Evaluations during training (eval_every, eval_every_epoch): the final one is timed on its own."""
    skipped_steps: int = 0
    """Optimizer steps whose update was dropped because the gradients were not finite."""
    best_step: int | None = None
    """The step of the best evaluation so far (trainer.metric_for_best); its checkpoint is kept."""
    best_value: float | None = None
    evaluations_without_improvement: int = 0
    """Evaluations in a row without an improvement larger than trainer.early_stopping_threshold."""
    stopped_early: str | None = None
    """Why early stopping ended training, if it did."""
    streams: list[dict[str, Any]] | None = None
    """data.streaming: the position of each process in its shard of the stream (what its last batch carried)."""
