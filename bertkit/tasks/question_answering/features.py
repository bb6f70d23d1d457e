"""Extractive question answering: questions -> features (windows of question + context), and their statistics.

A question and its context become one feature, or several when the context is longer than a feature
holds: windows of `max_seq_length` tokens that overlap by `doc_stride`. Training labels each feature
with the answer's first and last token, or with [CLS] (position 0) when the answer is not inside that
window or the question has none. Evaluation features keep each token's character span in the context,
which turns logits back into answer text (`answers.py`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import datasets
import numpy as np
from transformers import PreTrainedTokenizerBase

from bertkit.core.errors import DataError
from bertkit.core.seeding import fingerprint
from bertkit.readers.files import file_keys, read_table_file, row_location
from bertkit.readers.squad_json import (
    ANSWER_FOUND,
    ANSWER_REALIGNED,
    ANSWER_STARTS,
    ANSWER_TEXTS,
    ARTICLE,
    CONTEXT,
    FEATURES,
    ID,
    IS_IMPOSSIBLE,
    QUESTION,
    TITLE,
    read_hub,
    read_json,
    split_by_article,
)
from bertkit.tasks.fine_tuning import map_processes, windows_left_to_right
from bertkit.tasks.question_answering.answers import EXAMPLE, OFFSET_ENDS, OFFSET_STARTS
from bertkit.tasks.question_answering.config import SquadDataConfig

MODEL_COLUMNS = ("input_ids", "token_type_ids", "attention_mask", "start_positions", "end_positions")
MODEL_INPUTS = ("input_ids", "token_type_ids", "attention_mask")
"""What the tokenizer gives the model (token_type_ids only for models with type embeddings)."""
QUESTION_TRUNCATED, ANSWER_IN_WINDOW = "question_truncated", "answer_in_window"


def read_questions(cfg: SquadDataConfig, datasets_cache: str) -> tuple[dict[str, datasets.Dataset], str]:
    if cfg.train_file is None:
        return read_hub(cfg.hub_name, cfg.version, datasets_cache), f"the Hub ({cfg.hub_name or 'rajpurkar/squad'})"
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


def read_for_prediction(path: str, cfg: SquadDataConfig, datasets_cache: str) -> datasets.Dataset:
    """Questions to answer: a SQuAD JSON file (.json, as training reads it), or a table (JSON Lines, CSV, TSV,
    parquet) with `question` and `context` columns and, optionally, `id` (else the row number)."""
    if Path(path).suffix.lower() == ".json":
        return _read_file(path, "INPUT", cfg, datasets_cache)
    rows = read_table_file(path, "INPUT", datasets_cache)
    for column in (QUESTION, CONTEXT):
        if column not in rows.column_names:
            raise DataError(f"{path}: no column {column!r}; the columns are {rows.column_names}")
        empty = next((i for i, text in enumerate(rows[column]) if not isinstance(text, str) or not text), None)
        if empty is not None:
            raise DataError(f"{path}: {row_location(path, empty)} has no {column}")
    given = rows[ID] if ID in rows.column_names else [None] * len(rows)
    ids = [str(row) if qid is None else str(qid) for row, qid in enumerate(given)]
    seen: dict[str, int] = {}
    for row, qid in enumerate(ids):
        if qid in seen:
            raise DataError(f"{path}: {row_location(path, row)} repeats id {qid!r} of {row_location(path, seen[qid])}")
        seen[qid] = row
    count = len(rows)
    return datasets.Dataset.from_dict(
        {ID: ids, ARTICLE: [0] * count, TITLE: [""] * count, CONTEXT: rows[CONTEXT], QUESTION: rows[QUESTION],
         ANSWER_TEXTS: [[] for _ in ids], ANSWER_STARTS: [[] for _ in ids], IS_IMPOSSIBLE: [False] * count,
         ANSWER_FOUND: [False] * count, ANSWER_REALIGNED: [False] * count},
        features=FEATURES,
    )  # fmt: skip


def build_features(
    questions: datasets.Dataset, tokenizer: PreTrainedTokenizerBase, cfg: SquadDataConfig, key: str, training: bool
) -> datasets.Dataset:
    """Windows of question + context; training features carry start/end token positions."""
    tokenizer = windows_left_to_right(tokenizer)

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
        out: dict[str, list] = {name: encoded[name] for name in MODEL_INPUTS if name in encoded}
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
        num_proc=map_processes(cfg, len(questions)),
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
