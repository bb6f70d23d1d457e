"""Pretraining scores with their trivial baselines: pure functions of predictions and references.

Masked language modelling: accuracy, mean cross-entropy and perplexity over the masked positions, next to the
accuracy of always predicting the training set's most frequent token. A sentence-pair task (NSP, SOP):
accuracy next to always predicting the training set's majority label.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

Values = Sequence[int] | Sequence[float] | np.ndarray


def mlm_scores(predictions: Values, references: Values, losses: Values, majority_token: int | None) -> dict[str, float]:
    """accuracy, predictions (count), majority_baseline_accuracy, loss (nats) and perplexity."""
    scores = classification_scores(predictions, references, majority_token)
    # float64 sums: the losses arrive as float32, and the evaluate module reads them as Python floats.
    loss = float(np.mean(np.asarray(losses, dtype=np.float64))) if len(references) else float("nan")
    return {**scores, "loss": loss, "perplexity": math.exp(min(loss, 700.0))}


def classification_scores(predictions: Values, references: Values, majority: int | None) -> dict[str, float]:
    """accuracy, predictions (count) and, given the majority class, majority_baseline_accuracy."""
    guess, gold = np.asarray(predictions), np.asarray(references)
    count = len(gold)
    scores: dict[str, float] = {
        "accuracy": float((guess == gold).mean()) if count else float("nan"),
        "predictions": count,
    }
    if majority is not None:
        scores["majority_baseline_accuracy"] = float((gold == majority).mean()) if count else float("nan")
    return scores
