"""From the start and end logits of every feature back to one answer text per question.

Over all features (windows) of a question: the `n_best_size` best start and end tokens of each, spans
inside the context only, no longer than `max_answer_length` tokens, scored by start + end logit, the
best span cut from the context by the offset mapping. SQuAD v2.0: the null score ([CLS] start + end) is
the minimum over the question's features; "" is predicted when null score - best span score exceeds
`null_score_diff_threshold`, and that difference is the question's null odds.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import datasets
import numpy as np
import pyarrow.compute as pc

from bertkit.core.batch import Gathered
from bertkit.readers.squad_json import ANSWER_STARTS, ANSWER_TEXTS, CONTEXT, ID, SquadVersion
from bertkit.tasks.question_answering.config import SquadDataConfig

EXAMPLE, OFFSET_STARTS, OFFSET_ENDS = "example_index", "char_starts", "char_ends"
"""Evaluation features keep their question's row and, per token, its character span in the context
((-1, -1) for question and special tokens): what maps logits back to text."""
_NO_SPAN = 1e9
"""v2 null odds of a question without any allowed span (JSON has no infinity)."""


@dataclass(frozen=True)
class Answers:
    """One split's decoded answers, by question id."""

    predictions: dict[str, str]
    nbest: dict[str, list[dict[str, Any]]]
    null_odds: dict[str, float]
    """v2: null score - best span score per question (empty for v1)."""
    spans: dict[str, tuple[int, int] | None]
    """The predicted answer's first and last (exclusive) character in its context; None for no answer."""


class AnswerDecoder:
    """Decodes the gathered logits of one evaluation split (features in the split's order)."""

    def __init__(
        self, cfg: SquadDataConfig, questions: datasets.Dataset, examples: np.ndarray, starts: list, ends: list
    ) -> None:
        self.cfg = cfg
        self.questions = questions
        self.examples = examples
        """The question (row of `questions`) of each feature."""
        self.char_starts, self.char_ends = starts, ends
        """Per feature, each token's character span in the context; -1 outside the context."""

    @classmethod
    def from_features(cls, cfg: SquadDataConfig, questions: datasets.Dataset, features: datasets.Dataset):
        def per_feature(name: str) -> list[np.ndarray]:
            column = features.data.column(name).combine_chunks()
            flat = pc.list_flatten(column).to_numpy(zero_copy_only=False)
            bounds = column.offsets.to_numpy()
            return [flat[a:b] for a, b in zip(bounds[:-1], bounds[1:], strict=True)]

        return cls(cfg, questions, np.asarray(features[EXAMPLE]), per_feature(OFFSET_STARTS), per_feature(OFFSET_ENDS))

    def decode(self, outputs: Gathered) -> Answers:
        """The answer text, the n best spans and (v2) the null odds of every question."""
        start_logits, end_logits = outputs["start_logits"], outputs["end_logits"]
        if len(start_logits) != len(self.examples):
            raise ValueError(f"{len(start_logits)} features' logits for {len(self.examples)} features")
        v2 = self.cfg.version == SquadVersion.v2
        bounds = np.searchsorted(self.examples, np.arange(len(self.questions) + 1))
        contexts, ids = self.questions[CONTEXT], self.questions[ID]
        predictions, nbest, null_odds, chosen = {}, {}, {}, {}
        for question in range(len(self.questions)):
            spans, null = self._candidates(range(bounds[question], bounds[question + 1]), start_logits, end_logits)
            spans.sort(key=lambda span: -span[0])
            context = contexts[question]
            entries = [
                {"text": context[first:last], "score": score, "start_logit": s, "end_logit": e, "span": (first, last)}
                for score, s, e, first, last in spans[: self.cfg.n_best_size]
            ]
            best = entries[0] if entries else None
            if v2:
                entries.append({"text": "", "score": null[0], "start_logit": null[1], "end_logit": null[2]})
                entries = sorted(entries, key=lambda entry: -entry["score"])[: self.cfg.n_best_size]
                diff = null[0] - best["score"] if best is not None else _NO_SPAN
                null_odds[ids[question]] = float(diff)
                text = "" if best is None or diff > self.cfg.null_score_diff_threshold else best["text"]
            else:
                text = best["text"] if best is not None else ""
            scores = np.array([entry["score"] for entry in entries], dtype=np.float64)
            probabilities = np.exp(scores - scores.max()) if len(scores) else scores
            probabilities = probabilities / probabilities.sum() if len(scores) else probabilities
            nbest[ids[question]] = [
                {
                    "text": entry["text"],
                    "probability": float(p),
                    "start_logit": float(entry["start_logit"]),
                    "end_logit": float(entry["end_logit"]),
                }  # fmt: skip
                for entry, p in zip(entries, probabilities, strict=True)
            ]
            predictions[ids[question]] = text
            chosen[ids[question]] = best["span"] if text and best is not None else None
        return Answers(predictions=predictions, nbest=nbest, null_odds=null_odds, spans=chosen)

    def _candidates(self, features: range, start_logits: np.ndarray, end_logits: np.ndarray):
        """(score, start logit, end logit, first char, last char) of the allowed spans of these features,
        and the question's null (score, start logit, end logit): the minimum over its features."""
        spans: list[tuple] = []
        null = (float("inf"), 0.0, 0.0)
        for feature in features:
            char_starts, char_ends = self.char_starts[feature], self.char_ends[feature]
            length = len(char_starts)
            starts, ends = start_logits[feature, :length], end_logits[feature, :length]
            if starts[0] + ends[0] < null[0]:
                null = (float(starts[0] + ends[0]), float(starts[0]), float(ends[0]))
            top_starts = np.argsort(-starts, kind="stable")[: self.cfg.n_best_size]
            top_ends = np.argsort(-ends, kind="stable")[: self.cfg.n_best_size]
            first, last = np.meshgrid(top_starts, top_ends, indexing="ij")
            allowed = (
                (char_starts[first] >= 0)
                & (char_ends[last] >= 0)
                & (last >= first)
                & (last - first + 1 <= self.cfg.max_answer_length)
            )
            for a, b in zip(first[allowed], last[allowed], strict=True):
                spans.append((float(starts[a] + ends[b]), float(starts[a]), float(ends[b]),
                              int(char_starts[a]), int(char_ends[b])))  # fmt: skip
        return spans, null

    def references(self) -> list[dict[str, Any]]:
        """Every question's reference answers, as the official scripts read them."""
        return [
            {"id": question_id, "answers": {"text": texts, "answer_start": starts}}
            for question_id, texts, starts in zip(
                self.questions[ID], self.questions[ANSWER_TEXTS], self.questions[ANSWER_STARTS], strict=True
            )
        ]

    def files(self, answers: Answers) -> dict[str, str]:
        """predictions.json, nbest_predictions.json and (v2) null_odds.json, as the official scripts read them."""
        files = {"predictions.json": _json(answers.predictions), "nbest_predictions.json": _json(answers.nbest)}
        if self.cfg.version == SquadVersion.v2:
            files["null_odds.json"] = _json(answers.null_odds)
        return files


def _json(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False) + "\n"
