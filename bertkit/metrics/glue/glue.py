"""The official GLUE metrics as an `evaluate` module, loadable offline by path.

One configuration per task, as the GLUE benchmark scores it: CoLA Matthews correlation; STS-B Pearson and
Spearman correlation; MRPC and QQP accuracy and F1 (of the positive class, 1 = paraphrase/duplicate);
SST-2, MNLI (matched and mismatched alike), QNLI, RTE, WNLI and the AX diagnostic accuracy, and AX also
Matthews correlation (the GLUE server ranks AX by R3, which is Matthews correlation over three classes).
"""

import datasets
import evaluate
import numpy as np
from scipy.stats import pearsonr, spearmanr
from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef

_DESCRIPTION = "The official metric(s) of each GLUE task, computed with scikit-learn and scipy."
_KWARGS_DESCRIPTION = """
Args:
    predictions: predicted label ids, or scores for stsb.
    references: gold label ids, or gold scores for stsb.
Returns:
    cola: matthews_correlation. stsb: pearson, spearmanr. mrpc, qqp: accuracy, f1.
    ax: accuracy, matthews_correlation. sst2, mnli, mnli_matched, mnli_mismatched, qnli, rte, wnli: accuracy.
"""
_TASKS = (
    "cola",
    "sst2",
    "mrpc",
    "stsb",
    "qqp",
    "mnli",
    "mnli_matched",
    "mnli_mismatched",
    "qnli",
    "rte",
    "wnli",
    "ax",
)


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class Glue(evaluate.Metric):
    def _info(self):
        if self.config_name not in _TASKS:
            raise KeyError(f"glue metric: config name must be one of {list(_TASKS)}")
        dtype = "float32" if self.config_name == "stsb" else "int64"
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"predictions": datasets.Value(dtype), "references": datasets.Value(dtype)}),
        )

    def _compute(self, predictions, references):
        predictions = np.asarray(predictions)
        references = np.asarray(references)
        match self.config_name:
            case "cola":
                return {"matthews_correlation": float(matthews_corrcoef(references, predictions))}
            case "stsb":
                return {
                    "pearson": float(pearsonr(predictions, references)[0]),
                    "spearmanr": float(spearmanr(predictions, references)[0]),
                }
            case "mrpc" | "qqp":
                return {
                    "accuracy": float(accuracy_score(references, predictions)),
                    "f1": float(f1_score(references, predictions)),
                }
            case "ax":
                return {
                    "accuracy": float(accuracy_score(references, predictions)),
                    "matthews_correlation": float(matthews_corrcoef(references, predictions)),
                }
        return {"accuracy": float(accuracy_score(references, predictions))}
