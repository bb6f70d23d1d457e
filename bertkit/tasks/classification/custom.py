"""Your own sentence(-pair) data: CSV, TSV, JSON, JSONL or parquet with named text and label columns.

Labels are read from the training file: float values make a regression task (one output), anything else
(strings, integers, booleans) a classification task whose classes are the training file's distinct
labels, sorted. Without a validation file, a seeded fraction of the training rows is held out.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

import datasets
import numpy as np
from omegaconf import MISSING

from bertkit.core.batch import Gathered, Scores
from bertkit.core.errors import DataError
from bertkit.core.schema import input_path, require
from bertkit.readers.files import EncodingErrors, read_table_file, row_location
from bertkit.readers.glue_tsv import INDEX, LABEL, TEXT, TEXT_PAIR
from bertkit.tasks.classification import multi_label
from bertkit.tasks.classification.scores import classification_scores, regression_scores
from bertkit.tasks.classification.task import (
    LabelSpace,
    Predictions,
    SentenceSplits,
    SentenceTaskConfig,
    SequenceClassificationTask,
    label_ids,
    read_texts,
)

log = logging.getLogger(__name__)
_SETTINGS = {"train": "data.train_file", "validation": "data.validation_file", "test": "data.test_file"}


class LabelKind(StrEnum):
    """How the label column of your own data is read."""

    auto = "auto"  # lists or separated label sets mean multi-label, float values regression, else classification
    classification = "classification"
    regression = "regression"
    multi_label = "multi_label"  # several labels per row (a list, or one 0/1 column per label)


@dataclass(kw_only=True, slots=True)
class CustomDataConfig(SentenceTaskConfig):
    """Data recipe: your own CSV, TSV, JSON, JSONL or parquet files, one or two text columns and a label."""

    train_file: str = input_path(MISSING)
    validation_file: str | None = input_path(None)
    """None: hold out data.validation_fraction of the training file (seeded)."""
    test_file: str | None = input_path(None)
    """Rows to predict; a label column there is optional."""
    text_column: str = "text"
    text_pair_column: str | None = None
    """Second text of a pair task (e.g. the hypothesis of an entailment pair)."""
    label_column: str = "label"
    label_kind: LabelKind = LabelKind.auto
    label_separator: str = ","
    """Multi-label: what separates a row's labels in data.label_column (a JSON list needs none)."""
    label_columns: list[str] | None = None
    """Multi-label: one 0/1 column per label (their names are the labels) instead of data.label_column."""
    label_names_file: str | None = input_path(None)
    """Multi-label: label names, one per line, for label columns that hold ids (line i names id i)."""
    threshold: float | None = 0.5
    """Multi-label: a label is predicted when its probability reaches this; null: tuned on the validation split
    (best micro F1) and recorded in the model's config."""
    column_names: list[str] | None = None
    """Names of the columns of CSV/TSV files that have no header line (their first line is data)."""
    drop_duplicates: bool = False
    """Leave out training rows whose text (and pair) repeats an earlier row's, before the validation split is
    held out, so no text is in both (counted)."""
    encoding_errors: EncodingErrors = EncodingErrors.strict
    """Bytes that are not UTF-8: strict stops, naming line and byte offset; replace decodes them as U+FFFD."""
    validation_fraction: float = 0.1
    split_seed: int = 42
    """Seed of the held-out split, independent of the training seed so every seed sees the same split."""

    def __post_init__(self) -> None:
        SentenceTaskConfig.__post_init__(self)
        require(0 < self.validation_fraction < 1, "data.validation_fraction", "must be in (0, 1)")
        require(self.threshold is None or 0 < self.threshold < 1, "data.threshold", "must be in (0, 1), or null")
        require(self.label_columns is None or len(self.label_columns) >= 2, "data.label_columns", "needs two or more")

    @property
    def multi_label_asked(self) -> bool:
        return self.label_kind == LabelKind.multi_label or self.label_columns is not None


class CustomClassification(SequenceClassificationTask[CustomDataConfig]):
    """Your own files: classification over the training file's labels, or regression on float labels."""

    threshold: float = 0.5
    """Multi-label: the decision threshold in use (data.threshold, or the one tuned on validation)."""

    @property
    def headline_metrics(self) -> tuple[str, ...]:
        if self.labels.multi_label:
            return ("f1_micro", "f1_macro")
        return ("pearson", "spearmanr") if self.labels.is_regression else ("accuracy", "f1_macro")

    def decode(self, split: str, gathered: Gathered) -> Predictions:
        """Single-label as every sentence task; multi-label: each label's sigmoid probability against the
        threshold (data.threshold, or tuned on this split when it is the first scored one and the setting is null)."""
        if not self.labels.multi_label:
            return super().decode(split, gathered)
        gathered = self.per_document(split, gathered)
        probabilities = 1.0 / (1.0 + np.exp(-gathered["logits"].astype(np.float64)))
        references = gathered.get("labels")
        if self.cfg.threshold is not None:
            self.threshold = self.cfg.threshold
        elif references is not None and split == "validation":
            self.threshold = multi_label.best_threshold(probabilities, references)
            log.info("%s: decision threshold %.2f (best micro F1; data.threshold=null)", split, self.threshold)
        return Predictions(probabilities >= self.threshold, references, probabilities)

    def tuned_settings(self) -> dict[str, Any]:
        tuned = self.labels.multi_label and self.cfg.threshold is None
        return {"threshold": self.threshold} if tuned else {}

    def read(self, cache_dir: Path) -> tuple[SentenceSplits, LabelSpace]:
        return read_splits(self.cfg, str(cache_dir / "datasets"))

    def read_for_prediction(self, path: str, cache_dir: Path) -> datasets.Dataset:
        columns = (self.cfg.text_column, self.cfg.text_pair_column)
        placeholders = self.checkpoint_labels is not None and self.checkpoint_labels.placeholders
        no_gold = placeholders or self.labels.multi_label  # LABEL_0, ...: no gold to match; label sets: not kept
        label = None if no_gold else (self.cfg.label_column, self.labels)
        cache = str(cache_dir / "datasets")
        return read_texts(path, columns, self.cfg.encoding_errors, cache, label, self.cfg.column_names)

    def description(self) -> str:
        kind = "regression" if self.labels.is_regression else "classification"
        return f"{self.cfg.train_file} ({kind} of {_columns_named(self.cfg)})"

    def metric(self, predictions: np.ndarray, references: np.ndarray) -> Scores:
        if self.labels.multi_label:
            return multi_label.scores(predictions, references, self.labels.names)
        scores = regression_scores if self.labels.is_regression else classification_scores
        return scores(predictions, references)


HEADER_HINT = "the first line is read as the header: a file without one needs a first line naming its columns"


def read_splits(cfg: CustomDataConfig, datasets_cache: str) -> tuple[SentenceSplits, LabelSpace]:
    """Read the files, check columns and labels, and hold out a validation split if none is given."""
    as_text = [cfg.label_column] if cfg.label_kind == LabelKind.multi_label and not cfg.label_columns else None
    raw = {
        split: read_table_file(
            getattr(cfg, setting.split(".")[1]), setting, datasets_cache, cfg.encoding_errors, cfg.column_names, as_text
        )
        for split, setting in _SETTINGS.items()
        if getattr(cfg, setting.split(".")[1]) is not None
    }
    for split, rows in raw.items():
        _check_columns(cfg, split, rows, needs_label=split != "test")
    labels = label_space(cfg, raw["train"])
    train = _rows(cfg, "train", raw["train"], labels)
    skipped: dict[str, int] = {}
    if cfg.drop_duplicates:
        train, skipped["train"] = _without_repeats(train)
    if "validation" in raw:
        validation = _rows(cfg, "validation", raw["validation"], labels)
    else:
        train, validation = _hold_out(train, cfg, labels)
    prediction = {}
    if "test" in raw and cfg.predict:
        prediction["test"] = _rows(cfg, "test", raw["test"], labels, keep_label=False)
    splits = SentenceSplits(train=train, evaluation={"validation": validation}, prediction=prediction)
    splits.repeated_rows = skipped
    return splits, labels


def _without_repeats(rows: datasets.Dataset) -> tuple[datasets.Dataset, int]:
    """The rows whose text (and pair) no earlier row has, and how many were left out."""
    pairs = rows[TEXT_PAIR] if TEXT_PAIR in rows.column_names else [None] * len(rows)
    seen: set[tuple[str, str | None]] = set()
    kept = []
    for row, key in enumerate(zip(rows[TEXT], pairs, strict=True)):
        if key not in seen:
            seen.add(key)
            kept.append(row)
    if len(kept) < len(rows):
        log.info("%d training rows repeat an earlier row's text and are left out", len(rows) - len(kept))
    return rows.select(kept), len(rows) - len(kept)


def label_space(cfg: CustomDataConfig, train: datasets.Dataset) -> LabelSpace:
    """Label sets (when asked, or lists/separated sets found), regression for float labels (or when asked), else
    the training file's distinct labels, sorted."""
    multi = _multi_label_space(cfg, train)
    if multi is not None:
        return multi
    values = train[cfg.label_column]
    missing = next((i for i, value in enumerate(values) if value is None), None)
    if missing is not None:
        raise DataError(
            f"{cfg.train_file}: {row_location(cfg.train_file, missing)} has no label ({cfg.label_column!r})"
        )
    dtype = train.features[cfg.label_column]
    is_float = isinstance(dtype, datasets.Value) and dtype.dtype.startswith("float")
    if cfg.label_kind == LabelKind.regression or (cfg.label_kind == LabelKind.auto and is_float):
        if not isinstance(dtype, datasets.Value) or not (is_float or dtype.dtype.startswith("int")):
            raise DataError(f"{cfg.train_file}: data.label_kind=regression needs numbers in {cfg.label_column!r}")
        if cfg.label_kind == LabelKind.auto:
            log.warning(
                "%s: the labels in %r are decimal numbers (%d distinct): a regression task; set "
                "data.label_kind=classification to treat them as classes",
                cfg.train_file,
                cfg.label_column,
                len(set(values)),
            )
        return LabelSpace()
    if isinstance(dtype, datasets.ClassLabel):
        return LabelSpace(names=tuple(dtype.names))
    distinct = sorted(set(values), key=lambda v: (isinstance(v, str), v))
    if len(distinct) < 2:
        raise DataError(
            f"{cfg.train_file}: column {cfg.label_column!r} has a single label ({distinct[0]!r}); "
            "classification needs at least two"
        )
    return LabelSpace(names=tuple(str(v) for v in distinct))


def _multi_label_space(cfg: CustomDataConfig, train: datasets.Dataset) -> LabelSpace | None:
    """The labels of a multi-label task: the 0/1 columns, the names file, or the distinct labels of the sets."""
    if cfg.label_columns is not None:
        return LabelSpace(names=tuple(cfg.label_columns), multi_label=True)
    values = train[cfg.label_column]
    found = cfg.label_kind == LabelKind.auto and multi_label.looks_multi_label(values, cfg.label_separator)
    if not (cfg.multi_label_asked or found):
        return None
    if cfg.label_names_file is not None:
        return LabelSpace(names=multi_label.names_from_file(cfg.label_names_file), multi_label=True)
    names = multi_label.names_in(values, cfg.label_separator)
    if len(names) < 2:
        raise DataError(f"{cfg.train_file}: {cfg.label_column!r} has {len(names)} label(s); multi-label needs two")
    return LabelSpace(names=names, multi_label=True)


def _check_columns(cfg: CustomDataConfig, split: str, rows: datasets.Dataset, needs_label: bool) -> None:
    setting = _SETTINGS[split]
    wanted = {"data.text_column": cfg.text_column, "data.text_pair_column": cfg.text_pair_column}
    if needs_label and cfg.label_columns is not None:
        wanted |= {f"data.label_columns[{i}]": column for i, column in enumerate(cfg.label_columns)}
    elif needs_label:
        wanted["data.label_column"] = cfg.label_column
    path = getattr(cfg, setting.split(".")[1])
    for key, column in wanted.items():
        if column is not None and column not in rows.column_names:
            hint = "" if set(wanted.values()) & set(rows.column_names) else f"; {HEADER_HINT}"
            raise DataError(f"{path}: no column {column!r} ({key}); the columns are {rows.column_names}{hint}")
        feature = rows.features.get(column) if column is not None else None
        if not key.startswith("data.label_column") and feature is not None and _not_text(feature):
            raise DataError(
                f"{path}: column {column!r} ({key}) holds {getattr(feature, 'dtype', feature)} values, not text; "
                f"name the text column in {key}"
            )


def _not_text(feature: Any) -> bool:
    return not (isinstance(feature, datasets.Value) and feature.dtype in ("string", "large_string"))


def _rows(
    cfg: CustomDataConfig, split: str, rows: datasets.Dataset, labels: LabelSpace, keep_label: bool = True
) -> datasets.Dataset:
    """{text, text_pair?, label?, index} with labels as ids (or floats); unknown labels name the row."""
    path = getattr(cfg, _SETTINGS[split].split(".")[1])
    for column in (cfg.text_column, cfg.text_pair_column):
        if column is not None:
            empty = next((i for i, text in enumerate(rows[column]) if text is None), None)
            if empty is not None:
                raise DataError(f"{path}: {row_location(path, empty)} has no text in column {column!r}")
    columns = {cfg.text_column: TEXT}
    if cfg.text_pair_column is not None:
        columns[cfg.text_pair_column] = TEXT_PAIR
    if labels.multi_label:
        return _label_sets(cfg, path, rows, columns, labels, keep_label)
    labeled = keep_label and cfg.label_column in rows.column_names
    if labeled:
        columns[cfg.label_column] = LABEL
    out = rows.select_columns(list(columns)).rename_columns(columns)
    out = out.add_column(INDEX, [str(i) for i in range(len(out))])
    if not labeled:
        return out
    if labels.is_regression:
        return out.cast_column(LABEL, datasets.Value("float32"))
    feature = out.features[LABEL]
    values = [feature.int2str(v) for v in out[LABEL]] if isinstance(feature, datasets.ClassLabel) else out[LABEL]
    ids = label_ids(path, values, labels, f"the training file ({cfg.train_file})")
    return out.remove_columns(LABEL).add_column(LABEL, ids)


def _label_sets(
    cfg: CustomDataConfig, path: str, rows: datasets.Dataset, columns: dict, labels: LabelSpace, keep_label: bool
) -> datasets.Dataset:
    """{text, text_pair?, index, label?} with each row's labels as a 0/1 vector (rows with none allowed)."""
    out = rows.select_columns(list(columns)).rename_columns(columns)
    out = out.add_column(INDEX, [str(i) for i in range(len(out))])
    if not keep_label:
        return out
    if cfg.label_columns is not None:
        if not all(column in rows.column_names for column in cfg.label_columns):
            return out
        return out.add_column(LABEL, multi_label.columns_multi_hot(path, rows, cfg.label_columns))
    if cfg.label_column not in rows.column_names:
        return out
    by_id = cfg.label_names_file is not None
    vectors = multi_label.multi_hot(path, rows[cfg.label_column], labels.names, cfg.label_separator, by_id)
    return out.add_column(LABEL, vectors)


def _hold_out(
    train: datasets.Dataset, cfg: CustomDataConfig, labels: LabelSpace
) -> tuple[datasets.Dataset, datasets.Dataset]:
    """A seeded validation split of the training rows, stratified by class where every class allows it."""
    held_out = math.ceil(cfg.validation_fraction * len(train))  # how datasets rounds a fractional test_size
    if held_out < 1 or held_out >= len(train):
        raise DataError(
            f"{cfg.train_file}: {len(train)} rows are too few to hold out data.validation_fraction="
            f"{cfg.validation_fraction} of them; give data.validation_file"
        )
    stratify = None
    if not labels.is_regression and not labels.multi_label:
        counts = np.bincount(np.asarray(train[LABEL]), minlength=labels.num_labels)
        present = np.count_nonzero(counts)
        if counts.min() >= 2 and held_out >= present and len(train) - held_out >= present:
            train = train.cast_column(LABEL, datasets.ClassLabel(names=list(labels.names)))
            stratify = LABEL
    parts = train.train_test_split(test_size=cfg.validation_fraction, seed=cfg.split_seed, stratify_by_column=stratify)
    if stratify is not None:
        parts = parts.cast_column(LABEL, datasets.Value("int64"))
    return parts["train"], parts["test"]


def _columns_named(cfg: CustomDataConfig) -> str:
    texts = cfg.text_column if cfg.text_pair_column is None else f"{cfg.text_column} + {cfg.text_pair_column}"
    return f"{texts} -> {cfg.label_column}"
