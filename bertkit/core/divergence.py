"""What a task's outputs are as probability distributions, and the distances between two of them: R-Drop's
symmetric divergence between two dropout draws, and distillation's soft-target loss against a teacher.

Each is a mean over the rows (or elements) compared, so that its scale depends neither on the batch size nor on
how a batch is split between processes."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import torch
import torch.nn.functional as F


class OutputKind(StrEnum):
    categorical = "categorical"  # softmax over the last dimension: classes, choices, tags
    bernoulli = "bernoulli"  # an independent sigmoid per element: multi-label
    scalar = "scalar"  # point predictions: regression


@dataclass(frozen=True)
class Distributions:
    """A model's outputs for one batch, read as distributions: their kind, the logits, and which rows count
    (None: all; e.g. only the labeled tokens of token classification)."""

    kind: OutputKind
    logits: torch.Tensor
    keep: torch.Tensor | None = None

    def like(self, logits: torch.Tensor) -> Distributions:
        """Other logits of the same kind over the same rows (a second dropout draw, a teacher)."""
        return Distributions(self.kind, logits, self.keep)

    def rows(self, values: torch.Tensor) -> torch.Tensor:
        """Per-row values of the rows that count, averaged."""
        if self.keep is not None:
            values = values[self.keep]
        return values.mean() if values.numel() else values.sum()


def symmetric_divergence(first: Distributions, second: Distributions) -> torch.Tensor:
    """½(KL(P‖Q) + KL(Q‖P)) per row; for scalar outputs the squared difference (the KL of two equal-variance
    Gaussians up to a constant factor)."""
    a, b = first.logits.float(), second.logits.float()
    if first.kind == OutputKind.categorical:
        a_log, b_log = a.log_softmax(-1), b.log_softmax(-1)
        # KL(P‖Q) + KL(Q‖P) = Σ (p - q)(log p - log q)
        return first.rows(0.5 * ((a_log.exp() - b_log.exp()) * (a_log - b_log)).sum(-1))
    if first.kind == OutputKind.bernoulli:
        # For p = σ(a), q = σ(b): KL(P‖Q) + KL(Q‖P) = (p - q)(a - b); averaged over the labels, as BCE is
        return first.rows((0.5 * (a.sigmoid() - b.sigmoid()) * (a - b)).mean(-1))
    return first.rows((a - b).pow(2).flatten(1).mean(-1))


def soft_target_loss(student: Distributions, teacher: torch.Tensor, temperature: float) -> torch.Tensor:
    """T² x KL(teacher_T ‖ student_T) per row, both softened by the temperature T (Hinton et al. 2015: T² keeps
    the gradients' scale as T changes); for scalar outputs the squared difference to the teacher's."""
    s, t = student.logits.float() / temperature, teacher.float().detach() / temperature
    if student.kind == OutputKind.categorical:
        t_log = t.log_softmax(-1)
        kl = (t_log.exp() * (t_log - s.log_softmax(-1))).sum(-1)
    elif student.kind == OutputKind.bernoulli:  # log σ(x) and log(1 - σ(x)) = log σ(-x), stable for any x
        p_log, not_p_log = F.logsigmoid(t), F.logsigmoid(-t)
        kl = (p_log.exp() * (p_log - F.logsigmoid(s)) + not_p_log.exp() * (not_p_log - F.logsigmoid(-s))).mean(-1)
    else:
        return student.rows((student.logits.float() - teacher.float().detach()).pow(2).flatten(1).mean(-1))
    return student.rows(temperature**2 * kl)
