"""Metrics of your own sentence(-pair) tasks as an `evaluate` module, loadable offline by path.

Config "classification": accuracy, macro-averaged F1 (every class counts alike, whatever its size) and
Matthews correlation. Config "regression": Pearson and Spearman correlation and mean squared error.
"""

import datasets
import evaluate
import numpy as np
from scipy.stats import pearsonr, spearmanr
from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef, mean_squared_error

_DESCRIPTION = "Scores of a classification or regression task over sentences or sentence pairs."
_KWARGS_DESCRIPTION = """
Args:
    predictions: predicted label ids (classification) or values (regression).
    references: gold label ids or values.
Returns:
    classification: accuracy, f1_macro, matthews_correlation.
    regression: pearson, spearmanr, mse.
"""
_DTYPES = {"classification": "int64", "regression": "float32"}


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class Classification(evaluate.Metric):
    def _info(self):
        if self.config_name not in _DTYPES:
            raise KeyError(f"classification metric: config name must be one of {sorted(_DTYPES)}")
        dtype = _DTYPES[self.config_name]
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"predictions": datasets.Value(dtype), "references": datasets.Value(dtype)}),
        )

    def _compute(self, predictions, references):
        predictions = np.asarray(predictions)
        references = np.asarray(references)
        if self.config_name == "regression":
            return {
                "pearson": float(pearsonr(predictions, references)[0]),
                "spearmanr": float(spearmanr(predictions, references)[0]),
                "mse": float(mean_squared_error(references, predictions)),
            }
        return {
            "accuracy": float(accuracy_score(references, predictions)),
            "f1_macro": float(f1_score(references, predictions, average="macro")),
            "matthews_correlation": float(matthews_corrcoef(references, predictions)),
        }
