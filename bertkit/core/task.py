"""What a task hands the layers above it: data for the trainer, a head and sizes for the model recipe, and
how evaluation outputs become predictions and scores. The tasks themselves live in `bertkit.tasks`."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import datasets
import torch
from transformers import PreTrainedTokenizerBase

from bertkit.core.batch import Batch, Gathered, Scores
from bertkit.core.divergence import Distributions


@dataclass(frozen=True, kw_only=True)
class Head:
    """The model a task trains: which class, and what it changes in the encoder's configuration."""

    model_class: Any
    """A transformers Auto class (the head on whichever encoder the checkpoint is), a transformers class, or a
    bertkit subclass of one that computes the same loss with less work."""
    config: Mapping[str, Any] = field(default_factory=dict)
    """Configuration changes the head needs: num_labels, id2label, label2id, problem_type."""


@dataclass(frozen=True, kw_only=True)
class TaskSpec:
    """Facts about the task's inputs that the model recipe must fit."""

    vocab_size: int
    """Tokens in the tokenizer; the model's embedding matrix must hold at least this many."""
    pad_token_id: int
    max_seq_length: int
    cls_token_id: int | None = None
    sep_token_id: int | None = None

    @classmethod
    def of(cls, tokenizer: PreTrainedTokenizerBase, max_seq_length: int) -> TaskSpec:
        return cls(
            vocab_size=len(tokenizer),
            pad_token_id=tokenizer.pad_token_id,
            max_seq_length=max_seq_length,
            cls_token_id=tokenizer.cls_token_id,
            sep_token_id=tokenizer.sep_token_id,
        )


class ProcessStream(Protocol):
    """One process's shard of a training stream (a torch IterableDataset): its examples, each batch carrying its
    position (STREAM_POSITION), from which a resumed run continues exactly."""

    def __iter__(self) -> Iterator[dict[str, Any]]: ...

    def resume_from(self, position: dict[str, Any]) -> None:
        """Start after the example whose batch carried `position` (called before iterating)."""
        ...


@runtime_checkable
class TrainingStream(Protocol):
    """A training set read as a stream (data.streaming): examples without a length, each process its own shard."""

    def for_process(self, index: int, count: int, seed: int) -> ProcessStream:
        """The shard process `index` of `count` reads, its examples in an order drawn from the training seed."""
        ...


@dataclass(kw_only=True)
class TaskData:
    """The datasets and collators of a task, built from its data config and the tokenizer."""

    spec: TaskSpec
    train: datasets.Dataset | TrainingStream
    evaluation: dict[str, datasets.Dataset]
    """Labeled splits scored during training (when asked) and at the end, e.g. {"validation": ...}."""
    final_evaluation: dict[str, datasets.Dataset] = field(default_factory=dict)
    """Labeled splits scored once, after training (e.g. a test set that must not guide it)."""
    prediction: dict[str, datasets.Dataset] = field(default_factory=dict)
    """Unlabeled splits predicted at the end, e.g. {"test": ...}; written, never scored."""
    collate_train: Callable[[list[dict[str, Any]]], Batch]
    collate_eval: Callable[[list[dict[str, Any]]], Batch]
    stats: dict[str, Any] = field(default_factory=dict)
    """What was built, per split (documents, examples, truncations, ...), reported in metrics.json."""
    description: str = ""
    """One line naming the data, for the model card."""


class Evaluation(Protocol):
    """The part of a task the trainer calls: what to gather per example, then predictions and scores."""

    @property
    def headline_metrics(self) -> tuple[str, ...]:
        """The metrics that say how well the task went, most important first (the default "best" metric)."""
        ...

    def gather(self, batch: Batch, output: Any) -> dict[str, torch.Tensor]:
        """Per-example tensors of one evaluation batch and the model's output (leading dimension: examples)."""
        ...

    def output_distributions(self, output: Mapping[str, torch.Tensor], batch: Batch) -> Distributions:
        """The model's outputs for one training batch as distributions (R-Drop, distillation)."""
        ...

    def decode(self, split: str, gathered: Gathered) -> Any:
        """One split's gathered outputs -> its predictions (answer texts, tags, labels), computed once."""
        ...

    def score(self, split: str, decoded: Any) -> Scores:
        """The metrics of one labeled split's predictions."""
        ...
