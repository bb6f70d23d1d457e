"""What a data recipe hands on: datasets, collators, and the facts the model and loop need."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import datasets
import torch

Batch = dict[str, torch.Tensor]
EXAMPLE_INDEX, EPOCH = "example_index", "epoch"
"""Keys the loop adds to every training example it hands the collator: where the example sits in the
training set, and which epoch this is. Random choices keyed by them (MLM masks) replay exactly on resume."""


class TaskKind(StrEnum):
    pretraining = "pretraining"
    sequence_classification = "sequence_classification"  # one label (or one score) per sentence or pair
    question_answering = "question_answering"  # an answer span in a context, per question
    token_classification = "token_classification"  # a tag per word (named entities)


@dataclass(frozen=True, kw_only=True)
class TaskSpec:
    """Facts about the task that cross from the data recipe to the model recipe and the metrics."""

    kind: TaskKind
    vocab_size: int
    """Tokens in the tokenizer; the model's embedding matrix must hold at least this many."""
    pad_token_id: int
    max_seq_length: int
    num_labels: int = 0
    """Outputs of the task head; 1 means regression."""
    id2label: Mapping[int, str] = field(default_factory=dict)
    metric: str = ""
    """bertkit's evaluate module that scores the task (a folder under bertkit/metrics)."""
    metric_config: str | None = None
    """Its configuration, e.g. the GLUE task."""
    metric_args: Mapping[str, Any] = field(default_factory=dict)
    """Facts from the training data that metrics need, e.g. majority classes for trivial baselines."""

    @property
    def is_regression(self) -> bool:
        return self.kind == TaskKind.sequence_classification and self.num_labels == 1


@dataclass(kw_only=True)
class DataBundle:
    """Everything the loop needs from a data recipe, and nothing task-specific leaks past it."""

    task: TaskSpec
    train: datasets.Dataset
    evaluation: dict[str, datasets.Dataset]
    """Labeled evaluation splits by name, e.g. {"heldout": ...}; each is scored."""
    final_evaluation: dict[str, datasets.Dataset] = field(default_factory=dict)
    """Labeled splits scored once, after training (e.g. a test set that must not guide it)."""
    prediction: dict[str, datasets.Dataset] = field(default_factory=dict)
    """Unlabeled splits to predict at the end, e.g. {"test": ...}; written, never scored."""
    collate_train: Callable[[list[dict]], Batch]
    collate_eval: Callable[[list[dict]], Batch]
    eval_outputs: Callable[[Batch, Any], dict[str, torch.Tensor]]
    """Per-example tensors to gather from one evaluation batch and the model's output."""
    score_inputs: Callable[[str, dict[str, Any]], dict[str, Any]] = lambda split, outputs: outputs
    """One split's gathered outputs -> what its metric scores (identity, or e.g. SQuAD's logits of windows ->
    an answer text per question)."""
    count_tokens: Callable[[Batch], torch.Tensor | int]
    """Real (non-padding) tokens in a batch, for throughput: best a tensor on the batch's device, which the
    loop sums there and reads back only when it logs."""
    prediction_files: Callable[[dict[str, dict[str, Any]]], dict[str, str]] = lambda outputs: {}
    """Gathered outputs per split -> {file name under predictions/: text}; the task's own formats."""
    stats: dict[str, Any] = field(default_factory=dict)
    """What the recipe built (documents, instances, ...), reported and written to metrics.json."""
    description: str = ""
    """One line naming the data, for the model card."""
