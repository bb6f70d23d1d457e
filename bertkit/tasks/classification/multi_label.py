"""Several labels per text (emotions, topics, toxicity types): reading label sets, scoring them, and the decision
threshold on each label's sigmoid probability.

A row's labels come from one column holding a list (`2,3` split on `data.label_separator`, or a JSON list) or
from one 0/1 column per label (`data.label_columns`); with `data.label_names_file` the list holds ids, which
index its lines. A row may have no label at all.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import datasets
import numpy as np
from sklearn.metrics import f1_score, precision_score, recall_score

from bertkit.core.errors import DataError
from bertkit.readers.files import row_location

THRESHOLDS = np.round(np.arange(0.05, 0.96, 0.05), 2)
"""Decision thresholds tried when data.threshold is null: the one with the best micro F1 on validation wins."""


def items(value: Any, separator: str) -> list[str]:
    """The labels of one cell: a list as it is, a string split on the separator (blanks dropped), a number."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return []
    if isinstance(value, list | tuple):
        return [_text(item) for item in value if _text(item)]
    value = _text(value)
    return [item.strip() for item in str(value).split(separator) if item.strip()]


def _text(value: Any) -> str:
    """A label as written: 27.0 (a number read as float) as "27"."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def looks_multi_label(values: Sequence[Any], separator: str) -> bool:
    """Lists, or strings with the separator in them: a column of label sets."""
    return any(isinstance(v, list | tuple) or (isinstance(v, str) and separator in v) for v in values)


def names_from_file(path: str) -> tuple[str, ...]:
    """Label names, one per line (blank lines ignored): line i names id i."""
    file = Path(path).expanduser()
    if not file.is_file():
        raise DataError(f"data.label_names_file: {path!r} does not exist (a file with one label name per line)")
    names = tuple(line.strip() for line in file.read_text(encoding="utf-8").splitlines() if line.strip())
    if len(names) < 2:
        raise DataError(f"data.label_names_file: {path} names {len(names)} label(s); multi-label needs at least two")
    return names


def names_in(values: Sequence[Any], separator: str) -> tuple[str, ...]:
    """The distinct labels of a column of label sets, numbers in numeric order, then words in alphabetic order."""
    seen = {item for value in values for item in items(value, separator)}
    return tuple(sorted(seen, key=lambda item: (not item.isdigit(), int(item) if item.isdigit() else 0, item)))


def multi_hot(
    path: str, values: Sequence[Any], names: tuple[str, ...], separator: str, by_id: bool
) -> list[list[float]]:
    """One 0/1 vector per row; a label the names do not hold (or an id out of range) names its row."""
    index = {name: i for i, name in enumerate(names)}
    vectors = []
    for row, value in enumerate(values):
        vector = [0.0] * len(names)
        for item in items(value, separator):
            position = _position(item, index, len(names), by_id)
            if position is None:
                known = f"ids 0..{len(names) - 1} (data.label_names_file)" if by_id else f"labels {list(names)[:10]}"
                raise DataError(f"{path}: {row_location(path, row)} has label {item!r}; the known {known}")
            vector[position] = 1.0
        vectors.append(vector)
    return vectors


def _position(item: str, index: dict[str, int], count: int, by_id: bool) -> int | None:
    if not by_id:
        return index.get(item)
    return int(item) if item.isdigit() and int(item) < count else None


def columns_multi_hot(path: str, rows: datasets.Dataset, columns: Sequence[str]) -> list[list[float]]:
    """One 0/1 column per label (data.label_columns) as vectors; a value not 0/1 (or true/false) names its row."""
    table = [rows[column] for column in columns]
    vectors = []
    for row, values in enumerate(zip(*table, strict=True)):
        vector = []
        for column, value in zip(columns, values, strict=True):
            flag = {"1": 1.0, "0": 0.0, "true": 1.0, "false": 0.0, "1.0": 1.0, "0.0": 0.0}.get(str(value).lower())
            if flag is None:
                raise DataError(f"{path}: {row_location(path, row)} has {value!r} in label column {column!r}, not 0/1")
            vector.append(flag)
        vectors.append(vector)
    return vectors


def scores(predicted: np.ndarray, references: np.ndarray, names: tuple[str, ...]) -> dict[str, float]:
    """Micro and macro F1, precision and recall, subset accuracy (every label of a row right), per-label F1."""
    gold, guess = np.asarray(references) > 0.5, np.asarray(predicted, dtype=bool)
    found: dict[str, float] = {"subset_accuracy": float((gold == guess).all(axis=1).mean()) if len(gold) else 0.0}
    for average in ("micro", "macro"):
        options = {"average": average, "zero_division": 0}
        found[f"f1_{average}"] = float(f1_score(gold, guess, **options))
        found[f"precision_{average}"] = float(precision_score(gold, guess, **options))
        found[f"recall_{average}"] = float(recall_score(gold, guess, **options))
    per_label = f1_score(gold, guess, average=None, zero_division=0)
    return found | {f"f1_{name}": float(value) for name, value in zip(names, per_label, strict=True)}


def best_threshold(probabilities: np.ndarray, references: np.ndarray) -> float:
    """The decision threshold with the best micro F1 (the lowest among ties)."""
    gold = np.asarray(references) > 0.5
    results = [f1_score(gold, probabilities >= t, average="micro", zero_division=0) for t in THRESHOLDS]
    return float(THRESHOLDS[int(np.argmax(results))])
