"""Entity-level NER scores as an `evaluate` module, loadable offline by path (bertkit.tasks.token_classification).

seqeval's default mode (tags read as conlleval reads them) and its strict IOB2 mode, each with precision,
recall and F1 overall and per entity type, and token accuracy.
"""

import datasets
import evaluate

from bertkit.tasks.token_classification import entity_scores

_DESCRIPTION = "Entity-level precision, recall and F1 (seqeval; default and strict IOB2), and token accuracy."
_KWARGS_DESCRIPTION = """
Args:
    predictions: list of tag sequences, one per sentence (e.g. [["B-PER", "I-PER", "O"], ...]).
    references: list of gold tag sequences, aligned with the predictions.
Returns:
    precision, recall, f1 (default mode), strict_precision, strict_recall, strict_f1 (strict IOB2),
    accuracy (token level), and per entity type T: T_precision, T_recall, T_f1, T_number (default mode) and
    strict_T_precision, strict_T_recall, strict_T_f1.
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class Ner(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {
                    "predictions": datasets.Sequence(datasets.Value("string")),
                    "references": datasets.Sequence(datasets.Value("string")),
                }
            ),
        )

    def _compute(self, predictions, references):
        return entity_scores(predictions, references)
