"""How one micro-batch's loss is made and back-propagated: the model's own loss; with R-Drop, the batch twice
with different dropout and the divergence between the two outputs added; with adversarial training, a second
loss with the word embeddings perturbed along the loss gradient, back-propagated as well.

The perturbation is added to the output of the word-embedding layer, per example and normalised per example, so
the weights are never touched (nothing to restore) and an example's perturbation does not depend on which batch
or process it lands in: two processes train as one does."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

import torch
from accelerate import Accelerator
from accelerate.utils import DistributedType

from bertkit.core.batch import Batch
from bertkit.core.errors import ConfigError
from bertkit.core.task import Evaluation
from bertkit.settings import Adversarial, TrainerConfig


def check(cfg: TrainerConfig, compares_outputs: bool, task_name: str, accelerator: Accelerator) -> None:
    """Refuse, before any work, a technique this task or this launch cannot run."""
    if cfg.rdrop_alpha > 0 and not compares_outputs:
        raise ConfigError(
            f"trainer.rdrop_alpha={cfg.rdrop_alpha}: R-Drop needs outputs that are distributions over labels, tags "
            f"or choices, which {task_name} does not have; set trainer.rdrop_alpha=0"
        )
    if cfg.adversarial != Adversarial.none and accelerator.distributed_type == DistributedType.DEEPSPEED:
        raise ConfigError(
            f"trainer.adversarial={cfg.adversarial}: DeepSpeed steps its optimizer at every backward pass, and "
            "adversarial training needs two per batch; launch with DDP or FSDP, or set trainer.adversarial=none"
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


def _unit(gradient: torch.Tensor) -> torch.Tensor:
    """Each example's gradient scaled to norm 1 (over all its positions and dimensions)."""
    gradient = gradient.detach().float()
    norms = gradient.flatten(1).norm(dim=1).clamp_min(1e-12)
    return gradient / norms.view(-1, *([1] * (gradient.dim() - 1)))


def _within(delta: torch.Tensor, radius: float) -> torch.Tensor:
    """delta projected onto the ball of this radius, example by example."""
    norms = delta.flatten(1).norm(dim=1)
    return delta * (radius / norms.clamp_min(radius)).view(-1, *([1] * (delta.dim() - 1)))


class LossStep:
    """Forward and backward of one micro-batch, with the techniques the trainer settings turn on."""

    def __init__(self, cfg: TrainerConfig, task: Evaluation, accelerator: Accelerator, model: torch.nn.Module) -> None:
        self.cfg, self.task, self.accelerator = cfg, task, accelerator
        self.unwrapped = accelerator.unwrap_model(model)
        self.perturbation = None
        if cfg.adversarial != Adversarial.none:
            self.perturbation = EmbeddingPerturbation(self.unwrapped.get_input_embeddings())

    def __call__(self, model: torch.nn.Module, batch: Batch) -> Any:
        """The output of the clean pass (its loss: the model's, plus R-Drop's term), after every backward."""
        output = self.loss(model, batch)
        self.accelerator.backward(output.loss)
        if self.perturbation is not None:
            self._adversarial(model, batch)
        return output

    def loss(self, model: Callable[..., Any], batch: Batch) -> Any:
        """The model's output; with R-Drop, for the batch twice (one forward pass, dropout drawn per row), its
        loss the mean of both plus rdrop_alpha times their divergence."""
        if not self.cfg.rdrop_alpha:
            return model(**batch)
        size = len(batch["input_ids"])
        output = model(**{key: torch.cat([value, value]) for key, value in batch.items()})
        first, second = (
            {key: value[part * size : (part + 1) * size] for key, value in output.items() if _per_example(value, size)}
            for part in (0, 1)
        )
        output.loss = output.loss + self.cfg.rdrop_alpha * self.task.output_divergence(first, second, batch)
        return output

    def _adversarial(self, model: torch.nn.Module, batch: Batch) -> None:
        """Add the gradient of the loss at the perturbed embeddings (to the clean one already there)."""
        perturbation, cfg = self.perturbation, self.cfg
        assert perturbation is not None and perturbation.output is not None
        if perturbation.output.grad is None:  # the embeddings are frozen: nothing to perturb along
            return
        if cfg.adversarial == Adversarial.fgm:
            delta = cfg.adversarial_epsilon * _unit(perturbation.output.grad)
        else:
            delta = _within(cfg.adversarial_step_size * _unit(perturbation.output.grad), cfg.adversarial_epsilon)
            for _ in range(cfg.adversarial_steps - 1):  # the parameters' gradients are left alone until the last
                perturbation.delta = delta
                with self._autocast():
                    loss = self.loss(self.unwrapped, batch).loss
                (gradient,) = torch.autograd.grad(loss, perturbation.output)
                delta = _within(delta + cfg.adversarial_step_size * _unit(gradient), cfg.adversarial_epsilon)
        perturbation.delta = delta
        try:
            self.accelerator.backward(self.loss(model, batch).loss)
        finally:
            perturbation.delta = perturbation.output = None

    def _autocast(self) -> AbstractContextManager:
        return self.accelerator.autocast()


def _per_example(value: Any, size: int) -> bool:
    return torch.is_tensor(value) and value.dim() > 0 and value.shape[0] == 2 * size
