"""The official GLUE metrics as an `evaluate` module, loadable offline by path (bertkit.tasks.classification.scores).

One configuration per task, as the GLUE benchmark scores it: CoLA Matthews correlation; STS-B Pearson and
Spearman correlation; MRPC and QQP accuracy and F1; SST-2, MNLI, QNLI, RTE, WNLI and the AX diagnostic
accuracy, and AX also Matthews correlation.
"""

import datasets
import evaluate

from bertkit.tasks.classification.scores import GLUE_TASKS, glue_scores

_DESCRIPTION = "The official metric(s) of each GLUE task, computed with scikit-learn and scipy."
_KWARGS_DESCRIPTION = """
Args:
    predictions: predicted label ids, or scores for stsb.
    references: gold label ids, or gold scores for stsb.
Returns:
    cola: matthews_correlation. stsb: pearson, spearmanr. mrpc, qqp: accuracy, f1.
    ax: accuracy, matthews_correlation. sst2, mnli, mnli_matched, mnli_mismatched, qnli, rte, wnli: accuracy.
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class Glue(evaluate.Metric):
    def _info(self):
        if self.config_name not in GLUE_TASKS:
            raise KeyError(f"glue metric: config name must be one of {list(GLUE_TASKS)}")
        dtype = "float32" if self.config_name == "stsb" else "int64"
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"predictions": datasets.Value(dtype), "references": datasets.Value(dtype)}),
        )

    def _compute(self, predictions, references):
        return glue_scores(self.config_name, predictions, references)
