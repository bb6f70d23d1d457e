"""Offline metrics: local `evaluate` modules (one folder each), loaded by path, never from the Hub."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np

from bertkit.data.bundle import TaskKind, TaskSpec
from bertkit.data.masking import IGNORE_INDEX

MODULES = Path(__file__).parent
Scorer = Callable[[dict[str, np.ndarray]], dict[str, float]]


def load(name: str, config_name: str | None = None):
    """The evaluate module `name` shipped with bertkit; works without network access."""
    import evaluate  # importing evaluate costs seconds; only runs that score pay for it

    return evaluate.load(str(MODULES / name), config_name)


def scorer(task: TaskSpec) -> Scorer:
    """The function that turns gathered evaluation outputs into the task's metrics."""
    match task.kind:
        case TaskKind.pretraining:
            return partial(pretraining_scores, task)
        case TaskKind.sequence_classification:
            return partial(sequence_classification_scores, task)
        case TaskKind.question_answering:
            return partial(question_answering_scores, task)
        case TaskKind.token_classification:
            return partial(token_classification_scores, task)
    raise TypeError(f"no metrics for task kind {task.kind}")


def pretraining_scores(task: TaskSpec, outputs: dict[str, np.ndarray]) -> dict[str, float]:
    """MLM accuracy, loss and perplexity, NSP accuracy, each next to its trivial baseline."""
    masked = outputs["mlm_labels"] != IGNORE_INDEX
    mlm = load("pretraining", "mlm").compute(
        predictions=outputs["mlm_predictions"][masked],
        references=outputs["mlm_labels"][masked],
        losses=outputs["mlm_losses"][masked],
        majority_prediction=task.metric_args["majority_token_id"],
    )
    nsp = load("pretraining", "nsp").compute(
        predictions=outputs["nsp_predictions"],
        references=outputs["nsp_labels"],
        majority_prediction=task.metric_args["majority_nsp_label"],
    )
    return {
        "mlm_accuracy": mlm["accuracy"],
        "mlm_loss": mlm["loss"],
        "perplexity": mlm["perplexity"],
        "mlm_majority_baseline_accuracy": mlm["majority_baseline_accuracy"],
        "mlm_predictions": mlm["predictions"],
        "nsp_accuracy": nsp["accuracy"],
        "nsp_majority_baseline_accuracy": nsp["majority_baseline_accuracy"],
        "nsp_examples": nsp["predictions"],
    }


def predicted_labels(task: TaskSpec, logits: np.ndarray) -> np.ndarray:
    """Label ids (classification) or values (regression) from the head's outputs."""
    return logits[:, 0] if task.is_regression else logits.argmax(axis=-1)


def sequence_classification_scores(task: TaskSpec, outputs: dict[str, np.ndarray]) -> dict[str, float]:
    """The task's own metric (e.g. GLUE's, by task) on the predictions of one labeled split."""
    scores = load(task.metric, task.metric_config).compute(
        predictions=predicted_labels(task, outputs["logits"]), references=outputs["labels"]
    )
    return {**scores, "examples": len(outputs["labels"])}


def question_answering_scores(task: TaskSpec, inputs: dict[str, list]) -> dict[str, float]:
    """SQuAD exact match and F1 (v2.0: also HasAns/NoAns and the best null thresholds) of decoded answers."""
    scores = load(task.metric, task.metric_config).compute(**inputs)
    return {**scores, "questions": len(inputs["references"])}


def token_classification_scores(task: TaskSpec, inputs: dict[str, list]) -> dict[str, float]:
    """Entity-level precision, recall and F1 (seqeval, default and strict IOB2) and token accuracy."""
    scores = load(task.metric).compute(**inputs)
    return {**scores, "sentences": len(inputs["references"])}
