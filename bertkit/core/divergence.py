"""Symmetric divergences between two outputs of a model for the same inputs (R-Drop's consistency term), one per
kind of output. Each is the mean of ½(KL(P‖Q) + KL(Q‖P)) over the rows or elements compared, so that its scale
does not depend on the batch size, nor on how a batch is split between processes."""

from __future__ import annotations

import torch


def categorical(first: torch.Tensor, second: torch.Tensor, keep: torch.Tensor | None = None) -> torch.Tensor:
    """Softmax distributions over the last dimension (classes, choices, tags); `keep` selects the rows compared
    (e.g. the labeled tokens)."""
    first_log, second_log = first.float().log_softmax(-1), second.float().log_softmax(-1)
    # KL(P‖Q) + KL(Q‖P) = Σ (p - q)(log p - log q)
    per_row = 0.5 * ((first_log.exp() - second_log.exp()) * (first_log - second_log)).sum(-1)
    if keep is not None:
        per_row = per_row[keep]
    return per_row.mean() if per_row.numel() else per_row.sum()


def bernoulli(first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
    """Independent sigmoid probabilities, one per element (multi-label outputs)."""
    first, second = first.float(), second.float()
    # For Bernoulli p = σ(a), q = σ(b): KL(P‖Q) + KL(Q‖P) = (p - q)(a - b)
    return 0.5 * ((first.sigmoid() - second.sigmoid()) * (first - second)).mean()


def squared(first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
    """Point predictions (regression): the mean squared difference, the KL of two equal-variance Gaussians up
    to a constant factor."""
    return (first.float() - second.float()).pow(2).mean()
