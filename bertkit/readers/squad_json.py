"""SQuAD JSON (v1.1 and v2.0) and the Hub's SQuAD, as one row per question.

The JSON nests `data[].paragraphs[].qas[]`; every problem names its place in that tree
(`data[3].paragraphs[0].qas[2].answers[0]`) and the file. An answer whose text is not at its
`answer_start` is moved to the nearest place the text occurs in the context and counted; one whose text
occurs nowhere is kept for evaluation (references are texts) but marked, so training leaves it out
instead of learning a wrong span.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Iterator
from enum import StrEnum
from typing import Any

import datasets

from bertkit.core.errors import DataError
from bertkit.readers.files import FileKey, dataset_from_generator, load_hub


class SquadVersion(StrEnum):
    v1 = "v1"  # every question has an answer in its paragraph
    v2 = "v2"  # some have none (is_impossible): predict "" when the null score wins


ID, ARTICLE, TITLE, CONTEXT, QUESTION = "id", "article", "title", "context", "question"
ANSWER_TEXTS, ANSWER_STARTS, IS_IMPOSSIBLE = "answer_texts", "answer_starts", "is_impossible"
ANSWER_FOUND, ANSWER_REALIGNED = "answer_found", "answer_realigned"
"""Whether the first answer's text occurs in the context, and whether its offset had to be corrected."""

FEATURES = datasets.Features(
    {
        ID: datasets.Value("string"),
        ARTICLE: datasets.Value("int32"),
        TITLE: datasets.Value("string"),
        CONTEXT: datasets.Value("string"),
        QUESTION: datasets.Value("string"),
        ANSWER_TEXTS: datasets.List(datasets.Value("string")),
        ANSWER_STARTS: datasets.List(datasets.Value("int32")),
        IS_IMPOSSIBLE: datasets.Value("bool"),
        ANSWER_FOUND: datasets.Value("bool"),
        ANSWER_REALIGNED: datasets.Value("bool"),
    }
)
HUB_NAMES = {SquadVersion.v1: "rajpurkar/squad", SquadVersion.v2: "rajpurkar/squad_v2"}


def read_json(path: str, version: SquadVersion, datasets_cache: str, file: FileKey) -> datasets.Dataset:
    """The questions of one SQuAD JSON file (cached under the file's path, size and modification time)."""
    return dataset_from_generator(
        _json_rows, {"file": file, "version": str(version)}, datasets_cache, FEATURES, writer_batch_size=1000
    )


def _json_rows(file: FileKey, version: str) -> Iterator[dict[str, Any]]:
    path = file[0]
    try:
        with open(path, encoding="utf-8") as handle:
            document = json.load(handle)
    except UnicodeDecodeError as error:
        raise DataError(f"{path}: byte offset {error.start} is not UTF-8 ({error.reason})") from None
    except json.JSONDecodeError as error:
        raise DataError(f"{path}: not valid JSON: {error.msg} at line {error.lineno}, column {error.colno}") from None
    except RecursionError:
        raise DataError(f"{path}: not SQuAD JSON: nested too deeply") from None
    _object(document, "the top level", path)
    articles = _field(document, "data", list, "the top level", path)
    seen: set[str] = set()
    for a, article in enumerate(articles):
        where = f"data[{a}]"
        _object(article, where, path)
        title = article.get("title", "")
        title = title if isinstance(title, str) else str(title)
        for p, paragraph in enumerate(_field(article, "paragraphs", list, where, path)):
            where_p = f"{where}.paragraphs[{p}]"
            _object(paragraph, where_p, path)
            context = _field(paragraph, "context", str, where_p, path)
            if not context.strip():
                raise DataError(f"{path}: {where_p}.context is empty")
            for q, qa in enumerate(_field(paragraph, "qas", list, where_p, path)):
                where_q = f"{where_p}.qas[{q}]"
                _object(qa, where_q, path)
                row = _question(qa, context, version, where_q, path)
                if row[ID] in seen:
                    raise DataError(f"{path}: {where_q}.id {row[ID]!r} is the id of an earlier question too")
                seen.add(row[ID])
                yield {**row, ARTICLE: a, TITLE: title, CONTEXT: context}


def _question(qa: dict, context: str, version: str, where: str, path: str) -> dict[str, Any]:
    question_id = _field(qa, "id", (str, int), where, path)
    question = _field(qa, "question", str, where, path)
    impossible = qa.get("is_impossible", False)
    if not isinstance(impossible, bool):
        raise DataError(f"{path}: {where}.is_impossible is {impossible!r}, not true or false")
    if impossible and version == SquadVersion.v1:
        raise DataError(f"{path}: {where} is unanswerable (is_impossible), which is SQuAD v2.0: set data.version=v2")
    answers = [] if impossible else _field(qa, "answers", list, where, path)
    if not impossible and not answers:
        hint = "" if version == SquadVersion.v2 else " (a v2.0 file? set data.version=v2)"
        raise DataError(f"{path}: {where}.answers is empty and is_impossible is not set{hint}")
    texts, starts = [], []
    for i, answer in enumerate(answers):
        where_a = f"{where}.answers[{i}]"
        _object(answer, where_a, path)
        text = _field(answer, "text", str, where_a, path)
        start = _field(answer, "answer_start", int, where_a, path)
        if isinstance(start, bool) or start < 0 or start + len(text) > len(context):
            raise DataError(
                f"{path}: {where_a}.answer_start={start} puts {text!r} outside its context ({len(context)} characters)"
            )
        texts.append(text)
        starts.append(start)
    found, realigned = True, False
    if texts and context[starts[0] : starts[0] + len(texts[0])] != texts[0]:
        nearest = _nearest_occurrence(context, texts[0], starts[0])
        found, realigned = nearest is not None, nearest is not None
        if nearest is not None:
            starts[0] = nearest
    return {
        ID: str(question_id),
        QUESTION: question,
        ANSWER_TEXTS: texts,
        ANSWER_STARTS: starts,
        IS_IMPOSSIBLE: impossible,
        ANSWER_FOUND: found,
        ANSWER_REALIGNED: realigned,
    }


def _nearest_occurrence(context: str, text: str, start: int) -> int | None:
    if not text:
        return None
    best, at = None, context.find(text)
    while at != -1:
        if best is None or abs(at - start) < abs(best - start):
            best = at
        at = context.find(text, at + 1)
    return best


def _field(node: dict, key: str, kind, where: str, path: str):
    if key not in node:
        raise DataError(f"{path}: {where} has no {key!r}, so this is not SQuAD JSON (data[].paragraphs[].qas[])")
    value = node[key]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        names = " or ".join(k.__name__ for k in (kind if isinstance(kind, tuple) else (kind,)))
        raise DataError(f"{path}: {where}.{key} should be {names}, not {type(value).__name__}")
    return value


def _object(node: Any, where: str, path: str) -> None:
    if not isinstance(node, dict):
        raise DataError(f"{path}: {where} should be an object, not {type(node).__name__}")


# ---------------------------------------------------------------------------------------------- Hub


def read_hub(hub_name: str | None, version: SquadVersion, datasets_cache: str) -> dict[str, datasets.Dataset]:
    """train and validation from the Hub's SQuAD (the same columns as the JSON reader); hub_name None: the
    official SQuAD of that version."""
    name = hub_name or HUB_NAMES[version]
    offline = "Set data.train_file to a SQuAD JSON file (make finetune-squad SQUAD_DIR=/path/to/squad)"
    loaded = load_hub(name, None, datasets_cache, f"{name} from the Hub", offline)
    return {split: _from_hub(loaded[split]) for split in ("train", "validation")}


def _from_hub(rows: datasets.Dataset) -> datasets.Dataset:
    titles = {title: i for i, title in enumerate(dict.fromkeys(rows["title"]))}

    def convert(row: dict) -> dict:
        texts, starts = list(row["answers"]["text"]), list(row["answers"]["answer_start"])
        found = not texts or row[CONTEXT][starts[0] : starts[0] + len(texts[0])] == texts[0]
        return {
            ARTICLE: titles[row["title"]],
            ANSWER_TEXTS: texts,
            ANSWER_STARTS: starts,
            IS_IMPOSSIBLE: not texts,
            ANSWER_FOUND: found,
            ANSWER_REALIGNED: False,
        }

    return rows.map(convert, remove_columns=["answers"], features=FEATURES)


# ------------------------------------------------------------------------------------- article split


def split_by_article(rows: datasets.Dataset, fraction: float, seed: int) -> tuple[datasets.Dataset, datasets.Dataset]:
    """Train and held-out parts with no article in both: a seeded draw of ceil(fraction x articles)."""
    articles = sorted(set(rows[ARTICLE]))
    if len(articles) < 2:
        raise DataError(
            f"data.split_fraction: the file has {len(articles)} article(s); holding out whole articles needs "
            "at least two (or give data.validation_file)"
        )
    held = max(1, min(len(articles) - 1, math.ceil(fraction * len(articles))))
    chosen = set(random.Random(seed).sample(articles, held))
    is_held = [article in chosen for article in rows[ARTICLE]]
    train = rows.select([i for i, held_out in enumerate(is_held) if not held_out])
    evaluation = rows.select([i for i, held_out in enumerate(is_held) if held_out])
    return train, evaluation
