"""The training loop the plain Hugging Face baselines share: what a hand-written fine-tuning script does.

torch AdamW without weight decay on biases and LayerNorm (lr, eps 1e-8, decay 0.01), transformers' linear
schedule after a warmup of 10% of the steps, gradient clipping at 1.0, one update per batch. Nothing from
bertkit: the baselines must stay independent of what they are compared with.
"""

from __future__ import annotations

import math
import time

import torch
from transformers import get_linear_schedule_with_warmup


def fine_tune(model, loader, learning_rate: float, epochs: int, max_steps: int | None = None) -> dict:
    """Train in place; returns steps, train_seconds and tokens_per_second (non-padding tokens)."""
    no_decay = [p for n, p in model.named_parameters() if p.ndim < 2 or "LayerNorm" in n]
    decay = [p for n, p in model.named_parameters() if not (p.ndim < 2 or "LayerNorm" in n)]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": 0.01}, {"params": no_decay, "weight_decay": 0.0}],
        lr=learning_rate,
        eps=1e-8,
    )
    total = len(loader) * epochs if max_steps is None else max_steps
    scheduler = get_linear_schedule_with_warmup(optimizer, math.ceil(0.1 * total), total)
    started, tokens, steps = time.perf_counter(), 0, 0
    model.train()
    for _ in range(epochs):
        for batch in loader:
            if steps == total:
                break
            model(**batch).loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad()
            tokens += int(batch["attention_mask"].sum())
            steps += 1
    seconds = time.perf_counter() - started
    return {"steps": steps, "train_seconds": seconds, "tokens_per_second": tokens / seconds}
