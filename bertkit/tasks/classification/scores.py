"""Scores of sentence(-pair) classification and regression: pure functions of predictions and references.

GLUE's official metric per task: CoLA Matthews correlation; STS-B Pearson and Spearman correlation; MRPC and
QQP accuracy and F1 (of the positive class, 1 = paraphrase/duplicate); SST-2, MNLI (matched and mismatched
alike), QNLI, RTE, WNLI and the AX diagnostic accuracy, and AX also Matthews correlation (the GLUE server ranks
AX by R3, which is Matthews correlation over three classes). Your own data: accuracy, macro F1 and Matthews
correlation, or for regression Pearson, Spearman and mean squared error.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.stats import pearsonr, spearmanr
from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef, mean_squared_error

GLUE_TASKS = ("cola", "sst2", "mrpc", "stsb", "qqp", "mnli", "mnli_matched", "mnli_mismatched", "qnli", "rte",
              "wnli", "ax")  # fmt: skip
Values = Sequence[float] | Sequence[int] | np.ndarray


def glue_scores(task: str, predictions: Values, references: Values) -> dict[str, float]:
    """The official metric(s) of a GLUE task: label ids, or scores for stsb."""
    if task not in GLUE_TASKS:
        raise KeyError(f"GLUE task must be one of {list(GLUE_TASKS)}, not {task!r}")
    if task == "stsb":
        return correlations(predictions, references)
    guess, gold = _ids(predictions), _ids(references)
    match task:
        case "cola":
            return {"matthews_correlation": float(matthews_corrcoef(gold, guess))}
        case "mrpc" | "qqp":
            return {"accuracy": float(accuracy_score(gold, guess)), "f1": float(f1_score(gold, guess))}
        case "ax":
            return {
                "accuracy": float(accuracy_score(gold, guess)),
                "matthews_correlation": float(matthews_corrcoef(gold, guess)),
            }
    return {"accuracy": float(accuracy_score(gold, guess))}


def classification_scores(predictions: Values, references: Values) -> dict[str, float]:
    """Accuracy, macro-averaged F1 (every class counts alike, whatever its size) and Matthews correlation."""
    guess, gold = _ids(predictions), _ids(references)
    return {
        "accuracy": float(accuracy_score(gold, guess)),
        "f1_macro": float(f1_score(gold, guess, average="macro")),
        "matthews_correlation": float(matthews_corrcoef(gold, guess)),
    }


def regression_scores(predictions: Values, references: Values) -> dict[str, float]:
    """Pearson and Spearman correlation and mean squared error."""
    guess, gold = _floats(predictions), _floats(references)
    return {**correlations(guess, gold), "mse": float(mean_squared_error(gold, guess))}


def correlations(predictions: Values, references: Values) -> dict[str, float]:
    guess, gold = _floats(predictions), _floats(references)
    return {"pearson": float(pearsonr(guess, gold)[0]), "spearmanr": float(spearmanr(guess, gold)[0])}


def _ids(values: Values) -> np.ndarray:
    return np.asarray(values, dtype=np.int64)


def _floats(values: Values) -> np.ndarray:
    # Scores arrive as float32 (model outputs, Arrow columns); float64 sums them as the evaluate modules do.
    return np.asarray(values, dtype=np.float64)
