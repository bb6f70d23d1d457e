"""SQuAD exact match and F1 as an `evaluate` module, loadable offline by path.

Computed as the official evaluation scripts compute them (evaluate-v1.1.py and evaluate-v2.0.py):
answers are normalized (lowercase; punctuation removed; the articles a, an, the removed; whitespace
collapsed), F1 is over the bag of normalized tokens, and each question takes its best score over its
reference answers. Configurations:

- `v1`: exact_match and f1, in points (0-100), over all questions.
- `v2`: exact, f1 and total; HasAns_* and NoAns_* on answerable and unanswerable questions; best_exact,
  best_f1 and their thresholds over `no_answer_probability` (the null odds). A question without reference
  answers (or whose answers all normalize to nothing) has the empty string as its reference. Predictions are
  scored as given; `no_answer_threshold` (optional) first turns those whose no_answer_probability exceeds it
  into "", as the official script's --na-prob-thresh does.
"""

import collections
import re
import string

import datasets
import evaluate

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
_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)
_PUNCTUATION = frozenset(string.punctuation)


def normalize_answer(text: str) -> str:
    """Lowercase, drop punctuation, drop articles, collapse whitespace (in the official order)."""
    text = "".join(ch for ch in text.lower() if ch not in _PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


def exact_match(prediction: str, reference: str) -> int:
    return int(normalize_answer(prediction) == normalize_answer(reference))


def f1(prediction: str, reference: str, empty_matches_empty: bool) -> float:
    predicted, gold = normalize_answer(prediction).split(), normalize_answer(reference).split()
    if empty_matches_empty and (not predicted or not gold):
        return float(predicted == gold)  # v2.0: "" is the right answer to an unanswerable question
    common = sum((collections.Counter(predicted) & collections.Counter(gold)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(predicted), common / len(gold)
    return 2 * precision * recall / (precision + recall)


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
            return _v1(predicted, references)
        na_probs = {p["id"]: float(p["no_answer_probability"]) for p in predictions}
        if no_answer_threshold is not None:
            predicted = {k: "" if na_probs[k] > no_answer_threshold else v for k, v in predicted.items()}
        return _v2(predicted, na_probs, references)


def _v1(predicted: dict[str, str], references) -> dict[str, float]:
    exact = f1_total = 0.0
    for reference in references:
        if reference["id"] not in predicted:
            continue  # the official script counts an unanswered question as 0
        prediction, golds = predicted[reference["id"]], reference["answers"]["text"]
        exact += max(exact_match(prediction, gold) for gold in golds)
        f1_total += max(f1(prediction, gold, empty_matches_empty=False) for gold in golds)
    total = len(references)
    return {"exact_match": 100.0 * exact / total, "f1": 100.0 * f1_total / total}


def _v2(predicted: dict[str, str], na_probs: dict[str, float], references) -> dict[str, float]:
    exact, f1s, has_answer = {}, {}, {}
    for reference in references:
        qid = reference["id"]
        golds = [text for text in reference["answers"]["text"] if normalize_answer(text)] or [""]
        has_answer[qid] = golds != [""]
        if qid not in predicted:
            continue
        exact[qid] = max(exact_match(predicted[qid], gold) for gold in golds)
        f1s[qid] = max(f1(predicted[qid], gold, empty_matches_empty=True) for gold in golds)
    total = len(references)
    scores = {
        "exact": 100.0 * sum(exact.values()) / total,
        "f1": 100.0 * sum(f1s.values()) / total,
        "total": total,
    }
    for name, wanted in (("HasAns", True), ("NoAns", False)):
        ids = [qid for qid, has in has_answer.items() if has == wanted]
        if ids:
            scores[f"{name}_exact"] = 100.0 * sum(exact.get(q, 0) for q in ids) / len(ids)
            scores[f"{name}_f1"] = 100.0 * sum(f1s.get(q, 0.0) for q in ids) / len(ids)
            scores[f"{name}_total"] = len(ids)
    for name, raw in (("exact", exact), ("f1", f1s)):
        best, threshold = _best_threshold(predicted, raw, na_probs, has_answer)
        scores[f"best_{name}"], scores[f"best_{name}_thresh"] = best, threshold
    return scores


def _best_threshold(predicted, raw, na_probs, has_answer) -> tuple[float, float]:
    """The score if every question whose null odds exceed a threshold were answered "", at the best
    threshold: start from answering none, then answer questions in increasing order of null odds."""
    score = best = sum(1 for has in has_answer.values() if not has)
    threshold = 0.0
    for qid in sorted(na_probs, key=lambda q: na_probs[q]):
        if qid not in raw:
            continue
        if has_answer[qid]:
            score += raw[qid]
        elif predicted[qid]:
            score -= 1
        if score > best:
            best, threshold = score, na_probs[qid]
    return 100.0 * best / len(raw), threshold
