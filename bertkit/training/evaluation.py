"""Evaluation: run the model over a split, gather each example's outputs once across processes, and let the
task decode and score them (on the main process)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import torch
from accelerate import Accelerator
from accelerate.utils import broadcast_object_list
from torch.utils.data import DataLoader

from bertkit.core.batch import IGNORE_INDEX, Gathered
from bertkit.core.task import Evaluation

log = logging.getLogger(__name__)


@torch.no_grad()
def gather_split(
    accelerator: Accelerator,
    model: torch.nn.Module,
    loader: Iterable[dict[str, torch.Tensor]],
    gather: Callable[[Any, Any], dict[str, torch.Tensor]],
) -> Gathered:
    """Per-example outputs (`gather` of each batch and the model's output) over one split, each example exactly
    once across processes."""
    model.eval()
    collected: dict[str, list[np.ndarray]] = {}
    for batch in loader:
        outputs = gather(batch, model(**batch))
        for name, tensor in outputs.items():
            if tensor.dim() >= 2:  # other processes' batches may be padded to another length
                tensor = accelerator.pad_across_processes(tensor, dim=1, pad_index=IGNORE_INDEX)
            gathered = accelerator.gather_for_metrics(tensor)
            collected.setdefault(name, []).append(gathered.cpu().numpy())
    return {name: concatenate_padded(parts) for name, parts in collected.items()}


def evaluate_splits(
    accelerator: Accelerator, model: torch.nn.Module, loaders: dict[str, DataLoader], task: Evaluation, step: int
) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    """Scores of each labeled split (on every process: decisions taken on them, such as early stopping, must
    agree) and its decoded predictions (empty off the main process)."""
    scores: dict[str, dict[str, Any]] = {}
    decoded: dict[str, Any] = {}
    for name, loader in loaders.items():
        gathered = gather_split(accelerator, model, loader, task.gather)
        # Decoded and scored once, on the main process.
        if accelerator.is_main_process:
            decoded[name] = task.decode(name, gathered)
            scores[name] = task.score(name, decoded[name])
        else:
            scores[name] = {}
    if accelerator.is_main_process:
        summary = ", ".join(
            f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}"
            for split in scores.values()
            for k, v in split.items()
        )
        log.info("step %d eval: %s", step, summary)
    if accelerator.num_processes > 1:
        shared = [scores]
        broadcast_object_list(shared, from_process=0)
        scores = shared[0]
    return scores, decoded


def predict_splits(
    accelerator: Accelerator, model: torch.nn.Module, loaders: dict[str, DataLoader], task: Evaluation
) -> dict[str, Any]:
    """Decoded predictions of each unlabeled split (empty off the main process)."""
    decoded = {}
    for name, loader in loaders.items():
        gathered = gather_split(accelerator, model, loader, task.gather)
        if accelerator.is_main_process:
            decoded[name] = task.decode(name, gathered)
    return decoded


def concatenate_padded(parts: list[np.ndarray]) -> np.ndarray:
    """Batches of per-example arrays as one; per-token arrays padded to the widest batch with IGNORE_INDEX."""
    if parts[0].ndim < 2:
        return np.concatenate(parts)
    width = max(part.shape[1] for part in parts)
    padded = [
        np.pad(p, [(0, 0), (0, width - p.shape[1])] + [(0, 0)] * (p.ndim - 2), constant_values=IGNORE_INDEX)
        for p in parts
    ]
    return np.concatenate(padded)
