"""What a pretraining objective decides: its instances, its head, what evaluation gathers, and its scores.
Masked language modelling is common to all; an objective may add a sentence-pair task (NSP, SOP)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar

import datasets
import torch
from transformers import PreTrainedModel

from bertkit.core.batch import IGNORE_INDEX, Batch, Gathered, Scores
from bertkit.tasks.pretraining.instances import BuildSettings, InstanceBuilder
from bertkit.tasks.pretraining.scores import classification_scores, mlm_scores


class PretrainingObjective(ABC):
    pair_task: ClassVar[str | None] = None
    """Name of the sentence-pair task ("nsp", "sop") in outputs and scores; None: MLM alone."""
    pair_label: ClassVar[str | None] = None
    """Instance column holding the pair task's 0/1 label."""
    needs_two_documents: ClassVar[str] = "pretraining"
    """What, in an error message, needs at least two documents per split."""
    label_share: ClassVar[tuple[str, str] | None] = None
    """(statistic, instance column): the statistic reports the share of instances whose pair label is 1."""
    encoder_types: ClassVar[frozenset[str]] = frozenset({"bert"})
    """The model types the objective's head exists for (BERT's pretraining heads: BERT only)."""

    @abstractmethod
    def builder(self, tokenized: datasets.Dataset, settings: BuildSettings) -> InstanceBuilder:
        """The instance builder of one split."""

    @abstractmethod
    def model_class(self, masked_positions_only: bool, architecture: str = "bert") -> type[PreTrainedModel]:
        """The head: a transformers class, or its subclass that scores masked positions only."""

    def mlm_logits(self, output: Any) -> torch.Tensor:
        return output.prediction_logits

    def gather(self, batch: Batch, output: Any, every_position: bool) -> dict[str, torch.Tensor]:
        """Predicted id, label and loss at every masked position (others IGNORE_INDEX / 0), and the pair task's
        prediction and label. every_position: the head scored all positions, not the masked ones only."""
        labels = batch["labels"]
        masked = labels != IGNORE_INDEX
        logits = self.mlm_logits(output)
        logits = (logits[masked] if every_position else logits).float()
        predictions = torch.full_like(labels, IGNORE_INDEX)
        losses = torch.zeros(labels.shape, dtype=torch.float32, device=labels.device)
        predictions[masked] = logits.argmax(dim=-1)
        losses[masked] = torch.nn.functional.cross_entropy(logits, labels[masked], reduction="none")
        gathered = {"mlm_predictions": predictions, "mlm_labels": labels, "mlm_losses": losses}
        if self.pair_task is not None:
            gathered[f"{self.pair_task}_predictions"] = output.seq_relationship_logits.argmax(dim=-1)
            gathered[f"{self.pair_task}_labels"] = batch["next_sentence_label"]
        return gathered

    def score(self, gathered: Gathered, majority_token: int, majority_label: int | None) -> Scores:
        """MLM accuracy, loss and perplexity, and the pair task's accuracy, each next to its trivial baseline."""
        masked = gathered["mlm_labels"] != IGNORE_INDEX
        mlm = mlm_scores(
            gathered["mlm_predictions"][masked], gathered["mlm_labels"][masked], gathered["mlm_losses"][masked],
            majority_token,
        )  # fmt: skip
        scores: Scores = {
            "mlm_accuracy": mlm["accuracy"],
            "mlm_loss": mlm["loss"],
            "perplexity": mlm["perplexity"],
            "mlm_majority_baseline_accuracy": mlm["majority_baseline_accuracy"],
            "mlm_predictions": mlm["predictions"],
        }
        if self.pair_task is not None:
            task = self.pair_task
            pair = classification_scores(gathered[f"{task}_predictions"], gathered[f"{task}_labels"], majority_label)
            scores |= {
                f"{task}_accuracy": pair["accuracy"],
                f"{task}_majority_baseline_accuracy": pair["majority_baseline_accuracy"],
                f"{task}_examples": pair["predictions"],
            }
        return scores

    @property
    def headline_metrics(self) -> tuple[str, ...]:
        return ("mlm_accuracy",) if self.pair_task is None else ("mlm_accuracy", f"{self.pair_task}_accuracy")
