"""SQuAD exact match and F1, computed as the official evaluation scripts (evaluate-v1.1.py, evaluate-v2.0.py)
compute them: answers are normalized (lowercase; punctuation removed; the articles a, an, the removed;
whitespace collapsed), F1 is over the bag of normalized tokens, and each question takes its best score over
its reference answers.

- v1: exact_match and f1, in points (0-100), over all questions.
- v2: exact, f1 and total; HasAns_* and NoAns_* on answerable and unanswerable questions; best_exact, best_f1
  and their thresholds over the null odds. A question without reference answers (or whose answers all
  normalize to nothing) has the empty string as its reference.

`predicted` maps question ids to answer texts, `references` is a list of {"id", "answers": {"text": [...]}}.
"""

from __future__ import annotations

import collections
import re
import string
from collections.abc import Mapping, Sequence
from typing import Any

_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)
_PUNCTUATION = frozenset(string.punctuation)
References = Sequence[Mapping[str, Any]]


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


def squad_v1_scores(predicted: Mapping[str, str], references: References) -> dict[str, float]:
    exact = f1_total = 0.0
    for reference in references:
        if reference["id"] not in predicted:
            continue  # the official script counts an unanswered question as 0
        prediction, golds = predicted[reference["id"]], reference["answers"]["text"]
        exact += max(exact_match(prediction, gold) for gold in golds)
        f1_total += max(f1(prediction, gold, empty_matches_empty=False) for gold in golds)
    total = len(references)
    return {"exact_match": 100.0 * exact / total, "f1": 100.0 * f1_total / total}


def squad_v2_scores(
    predicted: Mapping[str, str], null_odds: Mapping[str, float], references: References
) -> dict[str, float]:
    exact: dict[str, int] = {}
    f1s: dict[str, float] = {}
    has_answer: dict[str, bool] = {}
    for reference in references:
        qid = reference["id"]
        golds = [text for text in reference["answers"]["text"] if normalize_answer(text)] or [""]
        has_answer[qid] = golds != [""]
        if qid not in predicted:
            continue
        exact[qid] = max(exact_match(predicted[qid], gold) for gold in golds)
        f1s[qid] = max(f1(predicted[qid], gold, empty_matches_empty=True) for gold in golds)
    total = len(references)
    scores: dict[str, float] = {
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
        best, threshold = _best_threshold(predicted, raw, null_odds, has_answer)
        scores[f"best_{name}"], scores[f"best_{name}_thresh"] = best, threshold
    return scores


def _best_threshold(
    predicted: Mapping[str, str], raw: Mapping[str, float], null_odds: Mapping[str, float], has_answer: dict[str, bool]
) -> tuple[float, float]:
    """The score if every question whose null odds exceed a threshold were answered "", at the best
    threshold: start from answering none, then answer questions in increasing order of null odds."""
    score = best = float(sum(1 for has in has_answer.values() if not has))
    threshold = 0.0
    for qid in sorted(null_odds, key=lambda q: null_odds[q]):
        if qid not in raw:
            continue
        if has_answer[qid]:
            score += raw[qid]
        elif predicted[qid]:
            score -= 1
        if score > best:
            best, threshold = score, null_odds[qid]
    return 100.0 * best / len(raw), threshold
