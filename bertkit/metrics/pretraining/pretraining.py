"""Pretraining metrics as an `evaluate` module, loadable offline by path (bertkit.tasks.pretraining.scores).

Config "mlm": one row per masked position (predicted id, reference id, cross-entropy loss) gives accuracy,
mean loss and perplexity, next to the accuracy of always predicting the training set's most frequent token.
Configs "nsp" and "sop": sentence-pair predictions give accuracy next to the majority-class baseline.
"""

import datasets
import evaluate

from bertkit.tasks.pretraining.scores import classification_scores, mlm_scores

_DESCRIPTION = "Masked-language-model and sentence-pair (NSP, SOP) scores with their trivial baselines."
_KWARGS_DESCRIPTION = """
Args:
    predictions: predicted token ids (mlm) or labels (nsp: 1 = random next; sop: 1 = swapped).
    references: true token ids (mlm) or labels (nsp, sop).
    losses: (mlm only) cross-entropy of each prediction, in nats.
    majority_prediction: the training data's most frequent token id (mlm) or label (nsp, sop), for the baseline.
Returns:
    mlm: accuracy, loss, perplexity, majority_baseline_accuracy, predictions.
    nsp, sop: accuracy, majority_baseline_accuracy, predictions.
"""
_PAIR = {"predictions": "int64", "references": "int64"}
_FEATURES = {"mlm": {**_PAIR, "losses": "float32"}, "nsp": _PAIR, "sop": _PAIR}


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
        if self.config_name == "mlm":
            return mlm_scores(predictions, references, losses, majority_prediction)
        return classification_scores(predictions, references, majority_prediction)
