"""Pretraining metrics as an `evaluate` module, loadable offline by path.

Config "mlm": one row per masked position (predicted id, reference id, cross-entropy loss) gives accuracy,
mean loss and perplexity, next to the accuracy of always predicting the training set's most frequent
token. Config "nsp": next-sentence predictions give accuracy next to the majority-class baseline.
"""

import math

import datasets
import evaluate
import numpy as np

_DESCRIPTION = "Masked-language-model and next-sentence-prediction scores with their trivial baselines."
_KWARGS_DESCRIPTION = """
Args:
    predictions: predicted token ids (mlm) or labels (nsp, 0 = is next, 1 = random next).
    references: true token ids (mlm) or labels (nsp).
    losses: (mlm only) cross-entropy of each prediction, in nats.
    majority_prediction: the training data's most frequent token id (mlm) or label (nsp), for the baseline.
Returns:
    mlm: accuracy, loss, perplexity, majority_baseline_accuracy, predictions.
    nsp: accuracy, majority_baseline_accuracy, predictions.
"""
_FEATURES = {
    "mlm": {"predictions": "int64", "references": "int64", "losses": "float32"},
    "nsp": {"predictions": "int64", "references": "int64"},
}


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class Pretraining(evaluate.Metric):
    def _info(self):
        if self.config_name not in _FEATURES:
            raise KeyError(f"pretraining metric: config name must be one of {sorted(_FEATURES)}")
        features = {name: datasets.Value(dtype) for name, dtype in _FEATURES[self.config_name].items()}
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(features),
        )

    def _compute(self, predictions, references, losses=None, majority_prediction=None):
        predictions = np.asarray(predictions)
        references = np.asarray(references)
        count = len(references)
        scores = {
            "accuracy": float((predictions == references).mean()) if count else float("nan"),
            "predictions": count,
        }
        if majority_prediction is not None:
            scores["majority_baseline_accuracy"] = (
                float((references == majority_prediction).mean()) if count else float("nan")
            )
        if self.config_name == "mlm":
            loss = float(np.mean(losses)) if count else float("nan")
            scores["loss"] = loss
            scores["perplexity"] = math.exp(min(loss, 700.0))
        return scores
