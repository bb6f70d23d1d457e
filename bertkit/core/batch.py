"""What a batch is, and the keys every layer agrees on."""

from __future__ import annotations

from typing import Any, TypeGuard

import numpy as np
import torch

Batch = dict[str, torch.Tensor]
"""Model inputs (and labels) of one batch, as the collators make them."""
Gathered = dict[str, np.ndarray]
"""One split's per-example evaluation outputs, gathered across processes (what a task's `gather` names)."""
Scores = dict[str, Any]
"""Metric name -> value (floats, and counts such as the number of examples scored)."""


def is_number(value: Any) -> TypeGuard[int | float]:
    """A score's value that can be compared, averaged or logged (booleans are not numbers here)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


IGNORE_INDEX = -100
"""Label of positions that are not predicted (PyTorch's cross-entropy default)."""

EXAMPLE_INDEX, EPOCH = "example_index", "epoch"
"""Keys the trainer adds to every training example it hands the collator: where the example sits in the
training set, and which epoch this is. Random choices keyed by them (MLM masks) replay exactly on resume."""

STREAM_POSITION = "stream_position"
"""Key of a streamed training batch (data.streaming) holding where in the stream its last example sits (a
JSON-able dict the stream resumes from); the trainer takes it out before the batch reaches the model."""
