"""The question-answering task: features for the model, and the way back from logits to answer texts."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import AutoModelForQuestionAnswering, PreTrainedTokenizerBase

from bertkit.core.batch import Batch, Gathered, Scores
from bertkit.core.errors import DataError
from bertkit.core.seeding import fingerprint, tokenizer_fingerprint
from bertkit.core.task import Head, TaskData, TaskSpec
from bertkit.readers.squad_json import ANSWER_FOUND, ID, QUESTION, SquadVersion
from bertkit.settings import ModelConfig
from bertkit.tasks.base import CardFacts, Prediction, Task, pipeline_usage
from bertkit.tasks.fine_tuning import DynamicPadding, first_rows
from bertkit.tasks.question_answering.answers import AnswerDecoder, Answers
from bertkit.tasks.question_answering.config import SquadDataConfig
from bertkit.tasks.question_answering.features import (
    MODEL_COLUMNS,
    build_features,
    read_for_prediction,
    read_questions,
    split_stats,
)
from bertkit.tasks.question_answering.scores import squad_v1_scores, squad_v2_scores

log = logging.getLogger(__name__)
_FORMAT_VERSION = 1  # bump when features change, to retire old caches
EVALUATION_COLUMNS = ("input_ids", "token_type_ids", "attention_mask")


class QuestionAnsweringTask(Task[SquadDataConfig]):
    """An answer span in a context per question (SQuAD v1.1; v2.0 also "no answer"), scored as the official
    scripts score it."""

    decoder: AnswerDecoder
    top_k: int = 5
    """Alternatives listed per question in `bertkit predict`'s records."""

    @property
    def v2(self) -> bool:
        return self.cfg.version == SquadVersion.v2

    @property
    def headline_metrics(self) -> tuple[str, ...]:
        return ("f1", "exact") if self.v2 else ("f1", "exact_match")

    def build(self, tokenizer: PreTrainedTokenizerBase, cache_dir: Path) -> TaskData:
        """Read, split by article if asked, build features, and the way back to answers."""
        if not tokenizer.is_fast:
            raise DataError("SQuAD features need the offset mapping of a fast tokenizer")
        questions, origin = read_questions(self.cfg, str(cache_dir / "datasets"))
        # An answer text that occurs nowhere in its context has no span to learn: such questions are left
        # out of training (and counted); in evaluation their reference texts still score predictions.
        found_nowhere = len(questions["train"]) - int(np.sum(questions["train"][ANSWER_FOUND]))
        questions["train"] = questions["train"].filter(lambda found: found, input_columns=ANSWER_FOUND)
        questions["train"] = first_rows(questions["train"], self.cfg.max_train_samples)
        questions["validation"] = first_rows(questions["validation"], self.cfg.max_eval_samples)
        key = fingerprint(_FORMAT_VERSION, tokenizer_fingerprint(tokenizer), self.cfg.max_seq_length,
                          self.cfg.doc_stride, self.cfg.max_query_length)  # fmt: skip
        train = build_features(questions["train"], tokenizer, self.cfg, key, training=True)
        evaluation = build_features(questions["validation"], tokenizer, self.cfg, key, training=False)
        stats = {
            "train": split_stats(questions["train"], train),
            "validation": split_stats(questions["validation"], evaluation),
        }
        stats["train"]["answers_not_found_left_out"] = found_nowhere
        for name, numbers in stats.items():
            log.info(
                "%s: %s",
                name,
                ", ".join(f"{k}={v:.1f}" if isinstance(v, float) else f"{k}={v}" for k, v in numbers.items()),
            )
        self.decoder = AnswerDecoder.from_features(self.cfg, questions["validation"], evaluation)
        collate = DynamicPadding(tokenizer, self.cfg.pad_to_multiple_of, MODEL_COLUMNS)
        return TaskData(
            spec=TaskSpec.of(tokenizer, self.cfg.max_seq_length),
            train=train.select_columns([c for c in MODEL_COLUMNS if c in train.column_names]),
            evaluation={"validation": _inputs(evaluation)},
            collate_train=collate,
            collate_eval=collate,
            stats=stats,
            description=f"SQuAD {self.cfg.version} from {origin}",
        )

    def predict_file(self, path: str, tokenizer: PreTrainedTokenizerBase, cache_dir: Path, top_k: int) -> Prediction:
        """Questions with their contexts, long contexts in windows as in training."""
        if not tokenizer.is_fast:
            raise DataError("SQuAD features need the offset mapping of a fast tokenizer")
        questions = read_for_prediction(path, self.cfg, str(cache_dir / "datasets"))
        key = fingerprint(_FORMAT_VERSION, tokenizer_fingerprint(tokenizer), self.cfg.max_seq_length,
                          self.cfg.doc_stride, self.cfg.max_query_length)  # fmt: skip
        features = build_features(questions, tokenizer, self.cfg, key, training=False)
        log.info("%s: %s", path, ", ".join(f"{k}={v}" for k, v in split_stats(questions, features).items()))
        self.decoder = AnswerDecoder.from_features(self.cfg, questions, features)
        self.top_k = top_k
        collate = DynamicPadding(tokenizer, self.cfg.pad_to_multiple_of, MODEL_COLUMNS)
        return self.prediction(_inputs(features), collate, len(questions))

    def prediction_records(self, split: str, decoded: Answers) -> list[dict[str, Any]]:
        """id, question, the answer with its probability among the n best and its characters in the context
        ("" and null offsets for no answer), and the top k alternatives."""
        records = []
        for qid, question in zip(self.decoder.questions[ID], self.decoder.questions[QUESTION], strict=True):
            answer, span, alternatives = decoded.predictions[qid], decoded.spans[qid], decoded.nbest[qid]
            score = next((entry["probability"] for entry in alternatives if entry["text"] == answer), 0.0)
            records.append({
                "id": qid, "question": question, "answer": answer, "score": score,
                "start": span[0] if span else None, "end": span[1] if span else None,
                "alternatives": [{"text": e["text"], "score": e["probability"]} for e in alternatives[: self.top_k]],
            })  # fmt: skip
        return records

    def head(self, model: ModelConfig) -> Head:
        return Head(model_class=AutoModelForQuestionAnswering, config={"num_labels": 2})  # a start and an end logit

    def gather(self, batch: Batch, output: Any) -> dict[str, torch.Tensor]:
        return {"start_logits": output.start_logits.float(), "end_logits": output.end_logits.float()}

    def decode(self, split: str, gathered: Gathered) -> Answers:
        return self.decoder.decode(gathered)

    def score(self, split: str, decoded: Answers) -> Scores:
        references = self.decoder.references()
        if self.v2:
            # Null odds as the squad evaluate module stores them (float32), so both give the same thresholds.
            null_odds = {qid: float(np.float32(odds)) for qid, odds in decoded.null_odds.items()}
            scores = squad_v2_scores(decoded.predictions, null_odds, references)
        else:
            scores = squad_v1_scores(decoded.predictions, references)
        return {**scores, "questions": len(references)}

    def prediction_files(self, split: str, decoded: Answers) -> dict[str, str]:
        return self.decoder.files(decoded)

    def card(self) -> CardFacts:
        return CardFacts(
            pipeline_tag="question-answering",
            usage=pipeline_usage(
                "question-answering",
                'print(pipe(question="Who wrote it?", context="The book was written by Ann Lee."))',
            ),
        )


def _inputs(features):
    """The model's inputs of evaluation features (token_type_ids only where the tokenizer gave them)."""
    return features.select_columns([name for name in EVALUATION_COLUMNS if name in features.column_names])
