"""Metrics of your own sentence(-pair) tasks as an `evaluate` module, loadable offline by path
(bertkit.tasks.classification.scores).

Config "classification": accuracy, macro-averaged F1 and Matthews correlation. Config "regression": Pearson
and Spearman correlation and mean squared error.
"""

import datasets
import evaluate

from bertkit.tasks.classification.scores import classification_scores, regression_scores

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
        if self.config_name == "regression":
            return regression_scores(predictions, references)
        return classification_scores(predictions, references)
