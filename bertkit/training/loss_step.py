"""How one micro-batch's loss is made and back-propagated, with the techniques the settings turn on:

- the model's own loss on the labels;
- distillation: alpha x that + (1 - alpha) x the soft-target loss against the teacher's logits (cached or computed
  alongside), plus hidden_weight x the hidden-state error;
- R-Drop: the batch twice in one forward pass (dropout drawn per row), the mean of both losses, plus rdrop_alpha x
  the symmetric divergence between the two outputs;
- adversarial training: after the backward pass of that loss, the same loss with the word embeddings perturbed
  along its gradient, back-propagated as well.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

import torch
from accelerate import Accelerator

from bertkit.core.batch import Batch
from bertkit.core.divergence import soft_target_loss, symmetric_divergence
from bertkit.core.task import Evaluation
from bertkit.settings import Adversarial, TrainerConfig
from bertkit.training.distillation import TEACHER_LOGITS, Teacher, hidden_state_loss
from bertkit.training.regularisers import EmbeddingPerturbation, unit, within


class LossStep:
    """Forward and backward of one micro-batch."""

    def __init__(
        self,
        cfg: TrainerConfig,
        task: Evaluation,
        accelerator: Accelerator,
        model: torch.nn.Module,
        teacher: Teacher | None = None,
    ) -> None:
        self.cfg, self.task, self.accelerator, self.teacher = cfg, task, accelerator, teacher
        self.unwrapped = accelerator.unwrap_model(model)
        self.perturbation = None
        if cfg.adversarial != Adversarial.none:
            self.perturbation = EmbeddingPerturbation(self.unwrapped.get_input_embeddings())

    def __call__(self, model: torch.nn.Module, batch: Batch) -> Any:
        """The output of the clean pass, its loss the one optimised, after every backward pass."""
        batch = dict(batch)
        teacher_logits = batch.pop(TEACHER_LOGITS, None)
        output = self.loss(model, batch, teacher_logits)
        self.accelerator.backward(output.loss)
        if self.perturbation is not None:
            self._adversarial(model, batch, teacher_logits)
        return output

    def loss(self, model: Callable[..., Any], batch: Batch, teacher_logits: torch.Tensor | None = None) -> Any:
        """The model's output for the batch (twice over with R-Drop), its loss every term turned on."""
        twice = self.cfg.rdrop_alpha > 0
        inputs = {key: torch.cat([value, value]) for key, value in batch.items()} if twice else batch
        hidden = self.teacher is not None and self.teacher.cfg.hidden_weight > 0
        output = model(**inputs, output_hidden_states=True) if hidden else model(**inputs)
        loss = output.loss
        if self.teacher is not None:
            loss = self._distilled(output, inputs, teacher_logits, twice)
        if twice:
            size = len(batch["input_ids"])
            first, second = (
                {key: value[part * size : (part + 1) * size] for key, value in output.items() if _rows(value, size)}
                for part in (0, 1)
            )
            loss = loss + self.cfg.rdrop_alpha * symmetric_divergence(
                self.task.output_distributions(first, batch), self.task.output_distributions(second, batch)
            )
        output.loss = loss
        return output

    def _distilled(self, output: Any, inputs: Batch, teacher_logits: torch.Tensor | None, twice: bool) -> torch.Tensor:
        """alpha x the loss on the labels + (1 - alpha) x the soft-target loss (+ the hidden-state error)."""
        assert self.teacher is not None
        cfg = self.teacher.cfg
        if teacher_logits is not None:  # cached: the same for both copies of an R-Drop batch
            teacher_output, logits = None, torch.cat([teacher_logits] * 2) if twice else teacher_logits
        else:
            teacher_output = self.teacher.outputs(inputs, hidden_states=cfg.hidden_weight > 0)
            logits = teacher_output.logits
        student = self.task.output_distributions(output, inputs)
        loss = cfg.alpha * output.loss + (1 - cfg.alpha) * soft_target_loss(student, logits, cfg.temperature)
        if teacher_output is not None and cfg.hidden_weight > 0:
            pairs = self.teacher.hidden_pairs(len(output.hidden_states) - 1)
            hidden = hidden_state_loss(
                output.hidden_states, teacher_output.hidden_states, pairs, inputs["attention_mask"]
            )
            loss = loss + cfg.hidden_weight * hidden
        return loss

    def _adversarial(self, model: torch.nn.Module, batch: Batch, teacher_logits: torch.Tensor | None) -> None:
        """Add the gradient of the loss at the perturbed embeddings (to the clean one already there)."""
        perturbation, cfg = self.perturbation, self.cfg
        assert perturbation is not None and perturbation.output is not None
        if perturbation.output.grad is None:  # the embeddings are frozen: nothing to perturb along
            return
        rows = math.prod(batch["input_ids"].shape[1:-1])  # a question's choices are rows of one example
        if cfg.adversarial == Adversarial.fgm:
            delta = cfg.adversarial_epsilon * unit(perturbation.output.grad, rows)
        else:
            step = cfg.adversarial_step_size
            delta = within(step * unit(perturbation.output.grad, rows), cfg.adversarial_epsilon, rows)
            for _ in range(cfg.adversarial_steps - 1):  # the parameters' gradients are left alone until the last
                perturbation.delta = delta
                with self._autocast():
                    loss = self.loss(self.unwrapped, batch, teacher_logits).loss
                scaler = self.accelerator.scaler  # fp16: scaled like the backward pass, or small gradients vanish
                if scaler is not None:
                    loss = loss * scaler.get_scale()
                (gradient,) = torch.autograd.grad(loss, perturbation.output)
                delta = within(delta + step * unit(gradient, rows), cfg.adversarial_epsilon, rows)
        perturbation.delta = delta
        try:
            self.accelerator.backward(self.loss(model, batch, teacher_logits).loss)
        finally:
            perturbation.delta = perturbation.output = None

    def _autocast(self) -> AbstractContextManager:
        return self.accelerator.autocast()


def _rows(value: Any, size: int) -> bool:
    """An output tensor with a row per example of the doubled batch (logits; not the loss, not hidden states)."""
    return torch.is_tensor(value) and value.dim() > 0 and value.shape[0] == 2 * size
