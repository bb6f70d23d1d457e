"""The seam every task implements: what the layers above (train.py, the model recipe, the trainer, the
artifact writers) ask of a task, in the order a run asks it."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

import datasets
import torch
from transformers import PretrainedConfig, PreTrainedTokenizerBase

from bertkit.core.batch import Batch, Gathered, Scores
from bertkit.core.divergence import Distributions
from bertkit.core.errors import DataError
from bertkit.core.task import Head, TaskData
from bertkit.settings import ModelConfig

Outputs = Mapping[str, torch.Tensor]
"""The tensors of a model's output (logits, ...), one row per example of the batch."""


class DataSettings(Protocol):
    """What every task's data config has."""

    max_seq_length: int
    packing: bool


ConfigT = TypeVar("ConfigT", bound=DataSettings)


@dataclass(frozen=True, kw_only=True)
class TrainingText:
    """Text a tokenizer can be trained on (a model trained from scratch has no vocabulary yet)."""

    fingerprint: str
    """Identifies the text: a tokenizer trained on it is cached under it."""
    documents: int | None
    """How many documents the text holds; None: unknown (a stream)."""
    sentence_batches: Callable[[], Iterator[list[str]]]
    """All sentences, in order, in lists; a new pass each call."""


@dataclass(frozen=True, kw_only=True)
class CardFacts:
    """What the model card says about the task."""

    pipeline_tag: str
    """The Hub's task of the model, e.g. "text-classification" (the transformers pipeline, where one exists)."""
    usage: str
    """Python that loads the folder ("path/to/this/folder") and runs the model on a made-up input."""
    head: str | None = None
    """One sentence about the task head (labels, regression), if worth saying."""
    settings: dict[str, str] = field(default_factory=dict)
    """Task settings for the card's training table (e.g. the masking of pretraining)."""


def pipeline_usage(pipeline_tag: str, call: str) -> str:
    """Usage through a transformers pipeline: `call` is a line that uses it as `pipe`."""
    return "\n".join(
        [
            "from transformers import pipeline",
            "",
            f'pipe = pipeline("{pipeline_tag}", model="path/to/this/folder")',
            call,
        ]
    )


@dataclass(frozen=True, kw_only=True)
class CheckpointLabels:
    """The labels a fine-tuned checkpoint was trained with (its config's id2label), in its order."""

    checkpoint: str
    names: tuple[str, ...]
    regression: bool
    multi_label: bool = False

    @classmethod
    def of(cls, checkpoint: str, config: PretrainedConfig) -> CheckpointLabels:
        """The labels a checkpoint's config.json names (id2label), and whether its head regresses or predicts
        several labels per example."""
        names = tuple(str(config.id2label[i]) for i in sorted(config.id2label))
        problem = getattr(config, "problem_type", None)
        return cls(checkpoint=checkpoint, names=names, regression=problem == "regression",
                   multi_label=problem == "multi_label_classification")  # fmt: skip

    @property
    def placeholders(self) -> bool:
        """Only transformers' LABEL_0, LABEL_1, ...: the checkpoint does not say what its ids mean."""
        return all(name == f"LABEL_{i}" for i, name in enumerate(self.names))

    def unknown(self, labels: Iterable[str]) -> list[str]:
        known = set(self.names)
        return sorted({label for label in labels if label not in known})

    def refuse(self, unknown: list[str], where: str) -> DataError:
        return DataError(
            f"{where} has label(s) {unknown[:5]} that model.name_or_path={self.checkpoint!r} does not know (its "
            f"labels: {list(self.names)[:20]}); evaluating (trainer.max_steps=0) uses the checkpoint's labels"
        )


PREDICTED = "input"
"""The split name of a file given to `bertkit predict`."""


@dataclass(frozen=True, kw_only=True)
class Prediction:
    """A file to predict with a trained model (`bertkit predict`), read and tokenized as the task reads its own
    files, and the task's way from the model's outputs to predictions, their files and their records."""

    inputs: datasets.Dataset
    """The model's inputs, one row per feature (an example may have several: windows)."""
    collate: Callable[[list[dict[str, Any]]], Batch]
    examples: int
    """Examples as the user counts them (rows, sentences, questions)."""
    gather: Callable[[Batch, Any], dict[str, torch.Tensor]]
    decode: Callable[[Gathered], Any]
    files: Callable[[Any], dict[str, str]]
    """Decoded predictions -> {file name: text}, the files training writes under predictions/."""
    records: Callable[[Any], list[dict[str, Any]]]
    """Decoded predictions -> one JSON object per example (JSON Lines output)."""


class Task(ABC, Generic[ConfigT]):
    """One task family: its data config, data, head, evaluation outputs, decoding, scores, prediction files,
    headline metrics and model-card facts. `build` comes first; the rest may use what it learned from the data
    (label names, tag sets, answer offsets)."""

    encoder_types: frozenset[str] | None = None
    """The model types (config.json's model_type) the head fits; None: any encoder the Auto classes load."""
    compares_outputs: bool = False
    """`output_distributions` reads the model's outputs as distributions (R-Drop and distillation need it)."""

    def __init__(self, cfg: ConfigT) -> None:
        self.cfg = cfg
        self.checkpoint_labels: CheckpointLabels | None = None

    def use_checkpoint_labels(self, labels: CheckpointLabels) -> None:
        """Before `build`, when a checkpoint is evaluated as it is: predictions name its labels, in its order,
        and a data label it does not know stops the run. (Tasks whose heads have no labels ignore them.)"""
        self.checkpoint_labels = labels

    @property
    def max_seq_length(self) -> int:
        """Tokens per sequence, special tokens included: the model's position embeddings must hold them."""
        return self.cfg.max_seq_length

    def training_text(self, cache_dir: Path) -> TrainingText | None:
        """Text to train a WordPiece vocabulary on when the model starts from scratch; None: the task has
        none, and a tokenizer must be named."""
        return None

    @abstractmethod
    def build(self, tokenizer: PreTrainedTokenizerBase, cache_dir: Path) -> TaskData:
        """Read the data, tokenize it (cached under cache_dir) and make the collators."""

    @abstractmethod
    def head(self, model: ModelConfig) -> Head:
        """The model class and configuration changes of this task's head; what `gather` reads of the model's
        output follows the head chosen here."""

    @abstractmethod
    def gather(self, batch: Batch, output: Any) -> dict[str, torch.Tensor]:
        """Per-example tensors to gather from one evaluation batch and the model's output."""

    @abstractmethod
    def decode(self, split: str, gathered: Gathered) -> Any:
        """One split's gathered outputs -> its predictions, once (scores and prediction files both use them)."""

    @abstractmethod
    def score(self, split: str, decoded: Any) -> Scores:
        """Metrics of one labeled split's predictions."""

    def prediction_files(self, split: str, decoded: Any) -> dict[str, str]:
        """{file name under predictions/: text} for one split's predictions."""
        return {}

    def tuned_settings(self) -> dict[str, Any]:
        """Data settings the run chose (e.g. a decision threshold tuned on validation): the model folder records
        them in place of the configured ones, so prediction uses them."""
        return {}

    def predict_file(self, path: str, tokenizer: PreTrainedTokenizerBase, cache_dir: Path, top_k: int) -> Prediction:
        """A file to predict with the checkpoint of `use_checkpoint_labels`, as `bertkit predict` reads it (the
        task's own input formats); `top_k`: alternatives shown per prediction, where the task has them."""
        raise DataError(f"{path}: bertkit predict reads no files for {type(self).__name__}")

    def prediction_records(self, split: str, decoded: Any) -> list[dict[str, Any]]:
        """One JSON object per example of a split's predictions (`bertkit predict`'s JSON Lines)."""
        raise NotImplementedError

    def prediction(self, inputs: datasets.Dataset, collate: Callable, examples: int) -> Prediction:
        """The Prediction of a file read as split PREDICTED, with this task's gather, decode and writers."""
        return Prediction(
            inputs=inputs,
            collate=collate,
            examples=examples,
            gather=self.gather,
            decode=lambda gathered: self.decode(PREDICTED, gathered),
            files=lambda decoded: self.prediction_files(PREDICTED, decoded),
            records=lambda decoded: self.prediction_records(PREDICTED, decoded),
        )

    def output_distributions(self, output: Outputs, batch: Batch) -> Distributions:
        """The model's outputs for `batch` as distributions: what R-Drop compares between two dropout draws and
        distillation with a teacher's. Only tasks with `compares_outputs`."""
        raise NotImplementedError(f"{type(self).__name__} has no outputs to read as distributions")

    @property
    @abstractmethod
    def headline_metrics(self) -> tuple[str, ...]:
        """The metrics that say how well the task went, most important first (curves, summaries, "best")."""

    @abstractmethod
    def card(self) -> CardFacts:
        """What the model card says about this task."""
