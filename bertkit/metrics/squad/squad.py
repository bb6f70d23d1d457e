"""SQuAD exact match and F1 as an `evaluate` module, loadable offline by path
(bertkit.tasks.question_answering.scores: as the official evaluation scripts compute them).

- `v1`: exact_match and f1, in points (0-100), over all questions.
- `v2`: exact, f1 and total; HasAns_* and NoAns_*; best_exact, best_f1 and their thresholds over
  `no_answer_probability` (the null odds). `no_answer_threshold` (optional) first turns the predictions whose
  no_answer_probability exceeds it into "", as the official script's --na-prob-thresh does.
"""

import datasets
import evaluate

from bertkit.tasks.question_answering.scores import squad_v1_scores, squad_v2_scores

_DESCRIPTION = "SQuAD v1.1 / v2.0 exact match and F1, as the official evaluation scripts compute them."
_KWARGS_DESCRIPTION = """
Args:
    predictions: list of {"id": str, "prediction_text": str} (v2: and "no_answer_probability": float).
    references: list of {"id": str, "answers": {"text": [str, ...], "answer_start": [int, ...]}}.
    no_answer_threshold: v2 only, optional: predict "" where no_answer_probability exceeds it.
Returns:
    v1: exact_match, f1. v2: exact, f1, total, HasAns_exact, HasAns_f1, HasAns_total, NoAns_exact, NoAns_f1,
    NoAns_total (when there are such questions), best_exact, best_exact_thresh, best_f1, best_f1_thresh.
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class Squad(evaluate.Metric):
    def _info(self):
        if self.config_name not in ("v1", "v2"):
            raise KeyError("squad metric: config name must be v1 or v2")
        prediction = {"id": datasets.Value("string"), "prediction_text": datasets.Value("string")}
        if self.config_name == "v2":
            prediction["no_answer_probability"] = datasets.Value("float32")
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {
                    "predictions": prediction,
                    "references": {
                        "id": datasets.Value("string"),
                        "answers": datasets.Sequence(
                            {"text": datasets.Value("string"), "answer_start": datasets.Value("int32")}
                        ),
                    },
                }
            ),
        )

    def _compute(self, predictions, references, no_answer_threshold=None):
        predicted = {p["id"]: p["prediction_text"] for p in predictions}
        if self.config_name == "v1":
            return squad_v1_scores(predicted, references)
        null_odds = {p["id"]: float(p["no_answer_probability"]) for p in predictions}
        if no_answer_threshold is not None:
            predicted = {k: "" if null_odds[k] > no_answer_threshold else v for k, v in predicted.items()}
        return squad_v2_scores(predicted, null_odds, references)
