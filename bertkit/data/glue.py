"""GLUE: one table of the nine tasks, and readers for the original TSV layout and the Hub.

Everything task-specific lives in `TASKS`: file and column names, label values and names, metric,
splits, and the names of the GLUE server's submission files. The loop and the model see only a
DataBundle with a TaskSpec.

The original layout (what `download_glue_data.py` writes) is read with quoting off: its text fields
contain bare `"` characters. CoLA's train and dev files have no header; MRPC's begin with a byte-order
mark; test files have no labels and are predicted into `predictions/<Task>.tsv` in the submission format.
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import datasets
import numpy as np

from bertkit.config import BadRows, GlueDataConfig, GlueTask
from bertkit.data import classification
from bertkit.data.bundle import DataBundle
from bertkit.data.classification import INDEX, LABEL, TEXT, TEXT_PAIR, LabelSpace, SentenceSplits
from bertkit.data.files import FileKey, dataset_from_generator, decoded_lines, file_keys
from bertkit.errors import DataError

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class GlueTaskInfo:
    """How one GLUE task is laid out, labeled and scored."""

    folder: str
    """Folder under GLUE_DIR, e.g. "MRPC"."""
    text_columns: tuple[str, ...]
    """TSV header names of the sentence (and the second sentence of a pair)."""
    label_column: str
    label_values: tuple[str, ...]
    """Labels as written in the TSV files, in class-id order; empty for regression (STS-B)."""
    label_names: tuple[str, ...] = ()
    """Readable names for the model's id2label, in the same order (the Hub's ClassLabel names)."""
    hub_columns: tuple[str, ...] = ("sentence1", "sentence2")
    evaluation: dict[str, str] = field(default_factory=lambda: {"validation": "dev.tsv"})
    """Labeled split name -> file."""
    test: dict[str, str] = field(default_factory=lambda: {"test": "test.tsv"})
    """Unlabeled split name -> file."""
    submission: dict[str, str] = field(default_factory=dict)
    """Unlabeled split name -> the GLUE server's file name (without .tsv)."""
    headerless_columns: tuple[str, ...] = ()
    """Names of the columns of labeled files that have no header row (CoLA)."""
    test_index_column: str = "index"

    @property
    def labels(self) -> LabelSpace:
        return LabelSpace(names=self.label_names or self.label_values)


TASKS: dict[GlueTask, GlueTaskInfo] = {
    GlueTask.cola: GlueTaskInfo(
        folder="CoLA",
        text_columns=("sentence",),
        label_column="label",
        label_values=("0", "1"),
        label_names=("unacceptable", "acceptable"),
        hub_columns=("sentence",),
        submission={"test": "CoLA"},
        headerless_columns=("source", "label", "original_label", "sentence"),
    ),
    GlueTask.sst2: GlueTaskInfo(
        folder="SST-2",
        text_columns=("sentence",),
        label_column="label",
        label_values=("0", "1"),
        label_names=("negative", "positive"),
        hub_columns=("sentence",),
        submission={"test": "SST-2"},
    ),
    GlueTask.mrpc: GlueTaskInfo(
        folder="MRPC",
        text_columns=("#1 String", "#2 String"),
        label_column="Quality",
        label_values=("0", "1"),
        label_names=("not_equivalent", "equivalent"),
        submission={"test": "MRPC"},
    ),
    GlueTask.stsb: GlueTaskInfo(
        folder="STS-B",
        text_columns=("sentence1", "sentence2"),
        label_column="score",
        label_values=(),
        submission={"test": "STS-B"},
    ),
    GlueTask.qqp: GlueTaskInfo(
        folder="QQP",
        text_columns=("question1", "question2"),
        label_column="is_duplicate",
        label_values=("0", "1"),
        label_names=("not_duplicate", "duplicate"),
        hub_columns=("question1", "question2"),
        submission={"test": "QQP"},
        test_index_column="id",
    ),
    GlueTask.mnli: GlueTaskInfo(
        folder="MNLI",
        text_columns=("sentence1", "sentence2"),
        label_column="gold_label",
        label_values=("entailment", "neutral", "contradiction"),
        hub_columns=("premise", "hypothesis"),
        evaluation={"validation_matched": "dev_matched.tsv", "validation_mismatched": "dev_mismatched.tsv"},
        test={"test_matched": "test_matched.tsv", "test_mismatched": "test_mismatched.tsv"},
        submission={"test_matched": "MNLI-m", "test_mismatched": "MNLI-mm", "diagnostic": "AX"},
    ),
    GlueTask.qnli: GlueTaskInfo(
        folder="QNLI",
        text_columns=("question", "sentence"),
        label_column="label",
        label_values=("entailment", "not_entailment"),
        hub_columns=("question", "sentence"),
        submission={"test": "QNLI"},
    ),
    GlueTask.rte: GlueTaskInfo(
        folder="RTE",
        text_columns=("sentence1", "sentence2"),
        label_column="label",
        label_values=("entailment", "not_entailment"),
        submission={"test": "RTE"},
    ),
    GlueTask.wnli: GlueTaskInfo(
        folder="WNLI",
        text_columns=("sentence1", "sentence2"),
        label_column="label",
        label_values=("0", "1"),
        label_names=("not_entailment", "entailment"),
        submission={"test": "WNLI"},
    ),
}
DIAGNOSTIC = ("diagnostic", "diagnostic.tsv")
"""GLUE's diagnostic set (AX): MNLI-style pairs, predicted by an MNLI model."""


def build(cfg: GlueDataConfig, tokenizer, cache_dir: Path) -> DataBundle:
    """The GLUE data recipe: read the task's splits, then the shared sentence-task pipeline."""
    info = TASKS[cfg.task]
    datasets_cache = str(cache_dir / "datasets")
    if cfg.glue_dir is None:
        splits = read_hub(cfg, info, datasets_cache)
        origin = f"the Hub ({cfg.hub_name}, {cfg.task})"
    else:
        splits = read_tsv_layout(cfg, info, datasets_cache)
        origin = str(Path(cfg.glue_dir) / info.folder)
    return classification.build(
        cfg,
        splits,
        info.labels,
        tokenizer,
        metric="glue",
        metric_config=str(cfg.task),
        description=f"GLUE {info.folder} from {origin}",
        prediction_files=lambda outputs, rows: prediction_files(info, outputs, rows),
    )


def task_is_present(glue_dir: str | Path, task: GlueTask) -> bool:
    """Whether a GLUE folder holds the files a run on this task needs (training and evaluation)."""
    info = TASKS[task]
    folder = Path(glue_dir) / info.folder
    return all((folder / name).is_file() for name in ("train.tsv", *info.evaluation.values()))


# ---------------------------------------------------------------------------------------------- TSV


def read_tsv_layout(cfg: GlueDataConfig, info: GlueTaskInfo, datasets_cache: str) -> SentenceSplits:
    """The task's files from <glue_dir>/<Task>/: train and dev are required, test is predicted if there."""
    glue_dir = Path(cfg.glue_dir).expanduser()
    folder = glue_dir / info.folder
    if not folder.is_dir():
        raise DataError(
            f"GLUE {cfg.task}: folder {folder} does not exist (data.glue_dir={cfg.glue_dir} should hold "
            f"{info.folder}/train.tsv, as download_glue_data.py lays it out)"
        )
    skipped: dict[str, int] = {}

    def read(split: str, path: Path, labeled: bool) -> datasets.Dataset:
        if not path.is_file():
            raise DataError(f"GLUE {cfg.task}: {path} does not exist (the {split} split; data.glue_dir)")
        rows = _read_tsv(path, info, labeled, cfg.bad_rows, datasets_cache)
        if cfg.bad_rows == BadRows.skip:
            skipped[split] = _skipped_rows(path, info, labeled)
        return rows

    train = read("train", folder / "train.tsv", labeled=True)
    evaluation = {split: read(split, folder / name, labeled=True) for split, name in info.evaluation.items()}
    prediction = {}
    if cfg.predict:
        for split, name in info.test.items():
            if (folder / name).is_file():
                prediction[split] = read(split, folder / name, labeled=False)
            else:
                log.warning("GLUE %s: no %s, so no %s predictions are written", cfg.task, folder / name, split)
        diagnostic = glue_dir.joinpath(*DIAGNOSTIC)
        if "diagnostic" in info.submission and diagnostic.is_file():
            prediction["diagnostic"] = read("diagnostic", diagnostic, labeled=False)
    return SentenceSplits(
        train=train, evaluation=evaluation, prediction=prediction, skipped_rows={k: v for k, v in skipped.items() if v}
    )


def _read_tsv(
    path: Path, info: GlueTaskInfo, labeled: bool, bad_rows: BadRows, datasets_cache: str
) -> datasets.Dataset:
    features = {TEXT: datasets.Value("string")}
    if len(info.text_columns) == 2:
        features[TEXT_PAIR] = datasets.Value("string")
    if labeled:
        features[LABEL] = datasets.Value("float32") if info.labels.is_regression else datasets.Value("int64")
    features[INDEX] = datasets.Value("string")
    kwargs = {"file": file_keys([path])[0], "info": _info_key(info), "labeled": labeled, "bad_rows": str(bad_rows)}
    return dataset_from_generator(_tsv_rows, kwargs, datasets_cache, datasets.Features(features))


def _info_key(info: GlueTaskInfo) -> tuple:
    """The parts of the task table the reader uses, as plain values (datasets hashes them for the cache)."""
    return (
        info.text_columns,
        info.label_column,
        info.label_values,
        info.headerless_columns,
        info.test_index_column,
    )


def _tsv_rows(file: FileKey, info: tuple, labeled: bool, bad_rows: str) -> Iterator[dict]:
    """Rows of one GLUE TSV file as {text, text_pair?, label?, index}; errors name the file and line."""
    path = file[0]
    text_columns, label_column, label_values, headerless, index_column = info
    reader = csv.reader(decoded_lines(path), delimiter="\t", quoting=csv.QUOTE_NONE)
    records = _checked_records(reader, path)
    if labeled and headerless:
        header = list(headerless)
    else:
        header = next(records, None)
        if header is None:
            raise DataError(f"{path}: the file is empty")
        if not header:
            raise DataError(f"{path}: line 1, the header, is blank")
        header[0] = header[0].removeprefix("\ufeff")  # MRPC's files begin with a byte-order mark
    wanted = [*text_columns, label_column] if labeled else list(text_columns)
    missing = [name for name in wanted if name not in header]
    if missing:
        raise DataError(f"{path}: no column {missing[0]!r} in the header; the columns are {header}")
    positions = [header.index(name) for name in text_columns]
    label_position = header.index(label_column) if labeled else None
    index_position = header.index(index_column) if index_column in header else None
    label_ids = {value: i for i, value in enumerate(label_values)}
    row_number = 0
    for fields in records:
        if not fields or fields == [""]:
            continue  # a trailing blank line
        if len(fields) != len(header):
            if bad_rows == BadRows.skip:
                continue
            raise DataError(
                f"{path}: line {reader.line_num} has {len(fields)} fields where the header has {len(header)} "
                "(data.bad_rows=skip leaves such rows out)"
            )
        row = {TEXT: fields[positions[0]]}
        if len(positions) == 2:
            row[TEXT_PAIR] = fields[positions[1]]
        if label_position is not None:
            row[LABEL] = _label(fields[label_position], label_ids, path, reader.line_num)
        row[INDEX] = fields[index_position] if index_position is not None else str(row_number)
        row_number += 1
        yield row


def _checked_records(reader, path: str) -> Iterator[list[str]]:
    """The reader's records; what the csv module refuses (a stray carriage return) names file and line."""
    while True:
        try:
            yield next(reader)
        except StopIteration:
            return
        except csv.Error as error:
            raise DataError(f"{path}: line {reader.line_num}: {error}") from None


def _label(value: str, label_ids: dict[str, int], path: str, line: int) -> int | float:
    if not label_ids:
        try:
            return float(value)
        except ValueError:
            raise DataError(f"{path}: line {line}: the score {value!r} is not a number") from None
    if value not in label_ids:
        raise DataError(f"{path}: line {line}: label {value!r} is not one of {sorted(label_ids)}")
    return label_ids[value]


def _skipped_rows(path: Path, info: GlueTaskInfo, labeled: bool) -> int:
    """Rows whose field count differs from the header's: what data.bad_rows=skip left out, to report it."""
    with open(path, encoding="utf-8", errors="replace") as handle:
        reader = csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)
        width = len(info.headerless_columns) if labeled and info.headerless_columns else len(next(reader, []))
        return sum(1 for fields in reader if fields and fields != [""] and len(fields) != width)


# ---------------------------------------------------------------------------------------------- Hub


def read_hub(cfg: GlueDataConfig, info: GlueTaskInfo, datasets_cache: str) -> SentenceSplits:
    """The task from the Hub (nyu-mll/glue): ClassLabel ids are mapped to this table's label order."""
    task = str(cfg.task)
    loaded = _load_hub(cfg, task, datasets_cache)
    evaluation = {split: _hub_rows(loaded[split], info, cfg, labeled=True) for split in info.evaluation}
    prediction = {}
    if cfg.predict:
        prediction = {split: _hub_rows(loaded[split], info, cfg, labeled=False) for split in info.test}
        if "diagnostic" in info.submission:
            prediction["diagnostic"] = _hub_rows(_load_hub(cfg, "ax", datasets_cache)["test"], info, cfg, False)
    return SentenceSplits(
        train=_hub_rows(loaded["train"], info, cfg, labeled=True), evaluation=evaluation, prediction=prediction
    )


def _load_hub(cfg: GlueDataConfig, config_name: str, datasets_cache: str) -> datasets.DatasetDict:
    try:
        return datasets.load_dataset(cfg.hub_name, config_name, cache_dir=datasets_cache)
    except Exception as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise DataError(
            f"could not load GLUE {config_name} from the Hub ({cfg.hub_name}): {reason}. Offline? Point "
            "data.glue_dir at GLUE in its original layout (make finetune-glue GLUE_DIR=/path/to/glue_data)"
        ) from None


def _hub_rows(rows: datasets.Dataset, info: GlueTaskInfo, cfg: GlueDataConfig, labeled: bool) -> datasets.Dataset:
    renames = dict(zip(info.hub_columns, (TEXT, TEXT_PAIR), strict=False))
    keep = [*info.hub_columns, "idx"] + (["label"] if labeled else [])
    rows = rows.select_columns(keep).rename_columns(renames | {"idx": INDEX})
    rows = rows.cast_column(INDEX, datasets.Value("string"))
    if not labeled or info.labels.is_regression:
        return rows
    hub_names = rows.features["label"].names
    if sorted(hub_names) != sorted(info.labels.names):
        raise DataError(
            f"Hub dataset {cfg.hub_name} ({cfg.task}) has labels {hub_names}, expected {list(info.labels.names)}"
        )
    to_table = np.array([info.labels.names.index(name) for name in hub_names])
    rows = rows.cast_column("label", datasets.Value("int64"))
    return rows.map(lambda batch: {"label": to_table[np.asarray(batch["label"])].tolist()}, batched=True)


# -------------------------------------------------------------------------------------- predictions


def prediction_files(
    info: GlueTaskInfo, outputs: dict[str, dict[str, np.ndarray]], rows: dict[str, datasets.Dataset]
) -> dict[str, str]:
    """Dev predictions next to their labels, and test predictions in the GLUE server's format."""
    files = {}
    for split, gathered in outputs.items():
        if split in info.submission:
            files[f"{info.submission[split]}.tsv"] = submission(info, gathered["logits"], rows[split])
        elif split in rows:
            header, table = classification.prediction_table(gathered, rows[split], info.labels)
            files[f"{split}.tsv"] = classification.tsv(header, table)
    return files


def submission(info: GlueTaskInfo, logits: np.ndarray, rows: datasets.Dataset) -> str:
    """`index<TAB>prediction` with labels as GLUE writes them (STS-B scores clipped to [0, 5])."""
    if info.labels.is_regression:
        values = [f"{v:.3f}" for v in np.clip(logits[:, 0], 0.0, 5.0)]
    else:
        values = [info.label_values[i] for i in logits.argmax(axis=-1)]
    return classification.tsv(["index", "prediction"], list(zip(rows[INDEX], values, strict=True)))
