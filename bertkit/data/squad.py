"""Extractive question answering (SQuAD v1.1 / v2.0): questions -> features -> DataBundle, and back.

A question and its context become one feature, or several when the context is longer than a feature
holds: windows of `max_seq_length` tokens that overlap by `doc_stride`. Training labels each feature
with the answer's first and last token, or with [CLS] (position 0) when the answer is not inside that
window or the question has none. Evaluation turns the logits of all features of a question back into
one answer text through the offset mapping (`squad_answers.py`).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import datasets
import numpy as np
from transformers import PreTrainedTokenizerBase

from bertkit.config import SquadDataConfig
from bertkit.data import squad_answers
from bertkit.data.bundle import DataBundle, TaskKind, TaskSpec
from bertkit.data.caching import fingerprint, tokenizer_fingerprint
from bertkit.data.files import file_keys
from bertkit.data.fine_tuning import DynamicPadding, first_rows
from bertkit.data.squad_answers import EXAMPLE, OFFSET_ENDS, OFFSET_STARTS
from bertkit.data.squad_reader import (
    ANSWER_FOUND,
    ANSWER_REALIGNED,
    ANSWER_STARTS,
    ANSWER_TEXTS,
    CONTEXT,
    IS_IMPOSSIBLE,
    QUESTION,
    read_hub,
    read_json,
    split_by_article,
)
from bertkit.errors import DataError

log = logging.getLogger(__name__)
_FORMAT_VERSION = 1  # bump when features change, to retire old caches
MODEL_COLUMNS = ("input_ids", "token_type_ids", "attention_mask", "start_positions", "end_positions")
QUESTION_TRUNCATED, ANSWER_IN_WINDOW = "question_truncated", "answer_in_window"


def build(cfg: SquadDataConfig, tokenizer: PreTrainedTokenizerBase, cache_dir: Path) -> DataBundle:
    """The SQuAD data recipe: read, split by article if asked, build features, and the way back."""
    datasets_cache = str(cache_dir / "datasets")
    if not tokenizer.is_fast:
        raise DataError("SQuAD features need the offset mapping of a fast tokenizer")
    questions, origin = _read(cfg, datasets_cache)
    # An answer text that occurs nowhere in its context has no span to learn: such questions are left
    # out of training (and counted); in evaluation their reference texts still score predictions.
    found_nowhere = len(questions["train"]) - int(np.sum(questions["train"][ANSWER_FOUND]))
    questions["train"] = questions["train"].filter(lambda found: found, input_columns=ANSWER_FOUND)
    questions["train"] = first_rows(questions["train"], cfg.max_train_samples)
    questions["validation"] = first_rows(questions["validation"], cfg.max_eval_samples)

    key = fingerprint(_FORMAT_VERSION, tokenizer_fingerprint(tokenizer), cfg.max_seq_length, cfg.doc_stride,
                      cfg.max_query_length)  # fmt: skip
    train = _features(questions["train"], tokenizer, cfg, key, training=True)
    evaluation = _features(questions["validation"], tokenizer, cfg, key, training=False)
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

    decoder = squad_answers.AnswerDecoder.from_features(cfg, questions["validation"], evaluation)
    collate = DynamicPadding(tokenizer, cfg.pad_to_multiple_of, MODEL_COLUMNS)
    return DataBundle(
        task=TaskSpec(
            kind=TaskKind.question_answering,
            vocab_size=len(tokenizer),
            pad_token_id=tokenizer.pad_token_id,
            max_seq_length=cfg.max_seq_length,
            num_labels=2,
            metric="squad",
            metric_config=str(cfg.version),
        ),
        train=train.select_columns([c for c in MODEL_COLUMNS if c in train.column_names]),
        evaluation={"validation": evaluation.select_columns(["input_ids", "token_type_ids", "attention_mask"])},
        collate_train=collate,
        collate_eval=collate,
        eval_outputs=lambda batch, output: {
            "start_logits": output.start_logits.float(),
            "end_logits": output.end_logits.float(),
        },
        count_tokens=lambda batch: batch["attention_mask"].sum(),
        score_inputs=lambda split, outputs: decoder.metric_inputs(outputs),
        prediction_files=lambda outputs: decoder.files(outputs["validation"]) if "validation" in outputs else {},
        stats=stats,
        description=f"SQuAD {cfg.version} from {origin}",
    )


def _read(cfg: SquadDataConfig, datasets_cache: str) -> tuple[dict[str, datasets.Dataset], str]:
    if cfg.train_file is None:
        return read_hub(cfg, datasets_cache), f"the Hub ({cfg.hub_name or 'rajpurkar/squad'})"
    train = _read_file(cfg.train_file, "data.train_file", cfg, datasets_cache)
    if cfg.validation_file is not None:
        validation = _read_file(cfg.validation_file, "data.validation_file", cfg, datasets_cache)
        return {"train": train, "validation": validation}, f"{cfg.train_file} and {cfg.validation_file}"
    train, validation = split_by_article(train, cfg.split_fraction, cfg.split_seed)
    parts = f"{1 - cfg.split_fraction:.0%}/{cfg.split_fraction:.0%}"
    where = f"{cfg.train_file}, articles split {parts} (seed {cfg.split_seed})"
    return {"train": train, "validation": validation}, where


def _read_file(path: str, setting: str, cfg: SquadDataConfig, datasets_cache: str) -> datasets.Dataset:
    file = Path(path).expanduser()
    if not file.is_file():
        raise DataError(f"{setting}: {path!r} does not exist (a SQuAD JSON file such as dev-v1.1.json)")
    rows = read_json(str(file), cfg.version, datasets_cache, file_keys([file])[0])
    if len(rows) == 0:
        raise DataError(f"{setting}: {path} holds no questions")
    return rows


def _features(
    questions: datasets.Dataset, tokenizer: PreTrainedTokenizerBase, cfg: SquadDataConfig, key: str, training: bool
) -> datasets.Dataset:
    """Windows of question + context; training features carry start/end token positions."""

    def encode(batch: dict[str, list], indices: list[int]) -> dict[str, list]:
        texts, truncated = _truncated_questions(batch[QUESTION], tokenizer, cfg.max_query_length)
        encoded = tokenizer(
            texts,
            batch[CONTEXT],
            truncation="only_second",
            max_length=cfg.max_seq_length,
            stride=cfg.doc_stride,
            return_overflowing_tokens=True,
            return_offsets_mapping=True,
            return_attention_mask=True,
        )
        sources = encoded.pop("overflow_to_sample_mapping")
        offsets_of = encoded.pop("offset_mapping")
        out: dict[str, list] = {name: encoded[name] for name in ("input_ids", "token_type_ids", "attention_mask")}
        out[EXAMPLE], out[QUESTION_TRUNCATED], out[OFFSET_STARTS], out[OFFSET_ENDS] = [], [], [], []
        out["start_positions"], out["end_positions"], out[ANSWER_IN_WINDOW] = [], [], []
        for feature, source in enumerate(sources):
            sequence_ids = encoded.sequence_ids(feature)
            offsets = [
                span if part == 1 else (-1, -1) for span, part in zip(offsets_of[feature], sequence_ids, strict=True)
            ]
            out[EXAMPLE].append(indices[source])
            out[QUESTION_TRUNCATED].append(truncated[source])
            out[OFFSET_STARTS].append([first for first, _ in offsets])
            out[OFFSET_ENDS].append([last for _, last in offsets])
            start, end = _answer_tokens(offsets, batch, source)
            out["start_positions"].append(start)
            out["end_positions"].append(end)
            out[ANSWER_IN_WINDOW].append(start > 0)
        if not training:
            for name in ("start_positions", "end_positions"):
                del out[name]
        return out

    return questions.map(
        encode,
        batched=True,
        with_indices=True,
        remove_columns=questions.column_names,
        num_proc=cfg.num_proc if cfg.num_proc > 1 and len(questions) > 1000 else None,
        new_fingerprint=fingerprint(questions._fingerprint, key, training),
        desc="SQuAD features",
    )


def _truncated_questions(
    questions: list[str], tokenizer: PreTrainedTokenizerBase, max_tokens: int
) -> tuple[list[str], list[bool]]:
    """Questions cut after max_tokens tokens (at a token's end in the text); leading spaces dropped, as
    some SQuAD questions have them and they would only shift offsets."""
    questions = [q.lstrip() for q in questions]
    encoded = tokenizer(questions, add_special_tokens=False, return_offsets_mapping=True, return_attention_mask=False)
    texts, truncated = [], []
    for question, offsets in zip(questions, encoded["offset_mapping"], strict=True):
        cut = len(offsets) > max_tokens
        texts.append(question[: offsets[max_tokens - 1][1]] if cut else question)
        truncated.append(cut)
    return texts, truncated


def _answer_tokens(offsets: list[tuple[int, int]], batch: dict[str, list], source: int) -> tuple[int, int]:
    """The first and last token of the first answer in this window, or (0, 0) for [CLS]."""
    if batch[IS_IMPOSSIBLE][source] or not batch[ANSWER_TEXTS][source]:
        return 0, 0
    first_char = batch[ANSWER_STARTS][source][0]
    last_char = first_char + len(batch[ANSWER_TEXTS][source][0])
    context = [i for i, span in enumerate(offsets) if span[0] >= 0]
    if not context or offsets[context[0]][0] > first_char or offsets[context[-1]][1] < last_char:
        return 0, 0
    start = next(i for i in context if offsets[i][1] > first_char)
    end = next(i for i in reversed(context) if offsets[i][0] < last_char)
    return start, end


def split_stats(questions: datasets.Dataset, features: datasets.Dataset) -> dict[str, Any]:
    examples = np.asarray(features[EXAMPLE])
    per_question = np.bincount(examples, minlength=len(questions)) if len(examples) else np.zeros(0)
    stats: dict[str, Any] = {
        "questions": len(questions),
        "features": len(features),
        "contexts_split_into_windows": int((per_question > 1).sum()),
        "truncated_questions": int(np.asarray(features[QUESTION_TRUNCATED])[_first_features(examples)].sum())
        if len(examples)
        else 0,
        "unanswerable": int(np.sum(questions[IS_IMPOSSIBLE])),
        "answers_realigned": int(np.sum(questions[ANSWER_REALIGNED])),
        "answers_not_found": int(len(questions) - np.sum(questions[ANSWER_FOUND])),
    }
    if "start_positions" in features.column_names:
        stats["features_without_the_answer"] = int(len(features) - np.sum(features[ANSWER_IN_WINDOW]))
    return stats


def _first_features(examples: np.ndarray) -> np.ndarray:
    return np.flatnonzero(np.r_[True, examples[1:] != examples[:-1]])
