"""Entity-level NER scores as an `evaluate` module, loadable offline by path, computed with seqeval.

Two ways to count entities: seqeval's default mode, which reads tags as conlleval does (an I- after O or
after another type still starts an entity), and its strict IOB2 mode, where only a B- starts one and an
entity must be tagged consistently to count. Both give precision, recall and F1 overall and per entity
type; token accuracy counts every word (O included), as conlleval's "accuracy" does.
"""

import datasets
import evaluate
from seqeval.metrics import accuracy_score, classification_report
from seqeval.scheme import IOB2

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
        scores = {"accuracy": float(accuracy_score(references, predictions))}
        for prefix, options in (("", {}), ("strict_", {"mode": "strict", "scheme": IOB2})):
            report = classification_report(references, predictions, output_dict=True, zero_division=0, **options)
            micro = report.pop("micro avg")
            for name in ("precision", "recall", "f1"):
                scores[f"{prefix}{name}"] = float(micro["f1-score" if name == "f1" else name])
            for entity, numbers in report.items():
                if entity.endswith(" avg"):
                    continue
                for name in ("precision", "recall", "f1"):
                    scores[f"{prefix}{entity}_{name}"] = float(numbers["f1-score" if name == "f1" else name])
                if not prefix:
                    scores[f"{entity}_number"] = int(numbers["support"])
        return scores
