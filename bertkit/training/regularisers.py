"""Adversarial training's perturbation of the word embeddings, and the start-up check of the regularisers a task
or a launch cannot run (R-Drop, adversarial training).

The perturbation is added to the output of the word-embedding layer, per example and normalised per example, so
the weights are never touched (nothing to restore) and an example's perturbation does not depend on which batch
or process it lands in: two processes train as one does."""

from __future__ import annotations

import logging
from typing import Any

import torch
from accelerate import Accelerator
from accelerate.utils import DistributedType

from bertkit.core.errors import ConfigError
from bertkit.settings import Adversarial, DistillConfig, TrainerConfig

log = logging.getLogger(__name__)


def check(
    cfg: TrainerConfig, distill: DistillConfig, compares_outputs: bool, task_name: str, accelerator: Accelerator
) -> None:
    """Refuse, before any work, a technique this task or this launch cannot run."""
    if distill.teacher is not None and not compares_outputs:
        raise ConfigError(
            f"distill.teacher: distillation needs outputs that are distributions over labels, tags or choices, "
            f"which {task_name} does not have; unset distill.teacher"
        )
    if cfg.rdrop_alpha > 0 and not compares_outputs:
        raise ConfigError(
            f"trainer.rdrop_alpha={cfg.rdrop_alpha}: R-Drop needs outputs that are distributions over labels, tags "
            f"or choices, which {task_name} does not have; set trainer.rdrop_alpha=0"
        )
    if cfg.adversarial == Adversarial.pgd and accelerator.distributed_type == DistributedType.FSDP:
        raise ConfigError(
            "trainer.adversarial=pgd: its inner steps run the model outside FSDP's wrapper, which holds only a "
            "shard of each weight; launch with DDP, or use trainer.adversarial=fgm"
        )
    if cfg.adversarial != Adversarial.none and accelerator.distributed_type == DistributedType.DEEPSPEED:
        raise ConfigError(
            f"trainer.adversarial={cfg.adversarial}: DeepSpeed steps its optimizer at every backward pass, and "
            "adversarial training needs two per batch; launch with DDP or FSDP, or set trainer.adversarial=none"
        )


def warn_without_dropout(cfg: TrainerConfig, encoder_has_dropout: bool) -> None:
    """R-Drop compares two dropout draws: without dropout they are the same pass twice."""
    if cfg.rdrop_alpha > 0 and not encoder_has_dropout:
        log.warning(
            "trainer.rdrop_alpha=%s with no dropout in the encoder (model.hidden_dropout_prob and "
            "model.attention_probs_dropout_prob are 0): both passes are the same, so R-Drop only doubles the cost",
            cfg.rdrop_alpha,
        )


class EmbeddingPerturbation:
    """A forward hook on the word embeddings: it keeps their output (for its gradient) and adds `delta` to it."""

    def __init__(self, embeddings: torch.nn.Module) -> None:
        self.delta: torch.Tensor | None = None
        self.output: torch.Tensor | None = None
        self.handle = embeddings.register_forward_hook(self._hook)

    def _hook(self, module: torch.nn.Module, inputs: Any, output: torch.Tensor) -> torch.Tensor:
        if self.delta is not None:
            output = output + self.delta.to(output.dtype)
        if output.requires_grad:
            output.retain_grad()
        self.output = output
        return output


def unit(gradient: torch.Tensor, rows_per_example: int = 1) -> torch.Tensor:
    """Each example's gradient scaled to norm 1 (over all its positions and dimensions, and over all its rows
    where an example has several: a multiple-choice question's choices)."""
    gradient = gradient.detach().float()
    norms = _example_norms(gradient, rows_per_example).clamp_min(1e-12)
    return gradient / _per_row(norms, gradient, rows_per_example)


def within(delta: torch.Tensor, radius: float, rows_per_example: int = 1) -> torch.Tensor:
    """delta projected onto the ball of this radius, example by example (an example's rows together)."""
    norms = _example_norms(delta, rows_per_example)
    return delta * _per_row(radius / norms.clamp_min(radius), delta, rows_per_example)


def _example_norms(tensor: torch.Tensor, rows_per_example: int) -> torch.Tensor:
    """The norm of each example's part of a tensor of rows (an example's rows together)."""
    return tensor.reshape(-1, rows_per_example * tensor[0].numel()).norm(dim=1)


def _per_row(per_example: torch.Tensor, like: torch.Tensor, rows_per_example: int) -> torch.Tensor:
    """A value per example, repeated for each of its rows and shaped to broadcast over `like`."""
    return per_example.repeat_interleave(rows_per_example).view(-1, *([1] * (like.dim() - 1)))
