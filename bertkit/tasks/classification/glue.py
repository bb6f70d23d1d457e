"""GLUE: one table of the nine tasks, their data config, and the task reading the original TSV layout or the Hub.

Everything task-specific lives in `TASKS`: file and column names, label values and names, metric, splits,
and the names of the GLUE server's submission files. Test files have no labels and are predicted into
`predictions/<Task>.tsv` in the submission format.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

import datasets
import numpy as np
from omegaconf import MISSING

from bertkit.core.batch import Scores
from bertkit.core.errors import DataError
from bertkit.core.schema import input_path
from bertkit.readers.files import EncodingErrors, load_hub
from bertkit.readers.glue_tsv import INDEX, TEXT, TEXT_PAIR, TsvLayout, count_bad_rows, read_tsv
from bertkit.tasks.classification.scores import glue_scores
from bertkit.tasks.classification.task import (
    LabelSpace,
    Predictions,
    SentenceSplits,
    SentenceTaskConfig,
    SequenceClassificationTask,
    read_texts,
)
from bertkit.tasks.fine_tuning import BadRows, tsv

log = logging.getLogger(__name__)


class GlueTask(StrEnum):
    """The nine GLUE tasks, by their Hub configuration names."""

    cola = "cola"
    sst2 = "sst2"
    mrpc = "mrpc"
    stsb = "stsb"
    qqp = "qqp"
    mnli = "mnli"
    qnli = "qnli"
    rte = "rte"
    wnli = "wnli"


@dataclass(kw_only=True, slots=True)
class GlueDataConfig(SentenceTaskConfig):
    """Data recipe: one GLUE task, from the original TSV layout (GLUE_DIR) or the Hub."""

    task: GlueTask = MISSING
    glue_dir: str | None = input_path(None)
    """Folder in the original layout (<glue_dir>/MRPC/train.tsv, ...). None: the Hub (needs network)."""
    hub_name: str = "nyu-mll/glue"
    """Hub dataset read when glue_dir is None."""
    bad_rows: BadRows = BadRows.error
    """A TSV row with the wrong number of fields: stop naming file and line, or skip it and count it."""


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
    headline: tuple[str, ...] = ("accuracy",)
    """GLUE's leaderboard columns for the task: the metrics it reports, in this order."""

    @property
    def labels(self) -> LabelSpace:
        return LabelSpace(names=self.label_names or self.label_values)

    @property
    def layout(self) -> TsvLayout:
        return TsvLayout(
            text_columns=self.text_columns,
            label_column=self.label_column,
            label_values=self.label_values,
            headerless_columns=self.headerless_columns,
            index_column=self.test_index_column,
        )


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
        headline=("matthews_correlation",),
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
        headline=("f1", "accuracy"),
    ),
    GlueTask.stsb: GlueTaskInfo(
        folder="STS-B",
        text_columns=("sentence1", "sentence2"),
        label_column="score",
        label_values=(),
        submission={"test": "STS-B"},
        headline=("pearson", "spearmanr"),
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
        headline=("f1", "accuracy"),
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


class GlueClassification(SequenceClassificationTask[GlueDataConfig]):
    """One GLUE task, scored by its official metric; test splits predicted in the submission format."""

    @property
    def info(self) -> GlueTaskInfo:
        return TASKS[self.cfg.task]

    @property
    def headline_metrics(self) -> tuple[str, ...]:
        return self.info.headline

    def read(self, cache_dir: Path) -> tuple[SentenceSplits, LabelSpace]:
        datasets_cache = str(cache_dir / "datasets")
        if self.cfg.glue_dir is None:
            return read_hub(self.cfg, self.info, datasets_cache), self.info.labels
        return read_tsv_layout(self.cfg, self.info, datasets_cache), self.info.labels

    def read_for_prediction(self, path: str, cache_dir: Path) -> datasets.Dataset:
        """A .tsv in the task's GLUE layout (its test.tsv, or a file with the same columns); other files as your
        own data with columns "text" (and "text_pair")."""
        datasets_cache = str(cache_dir / "datasets")
        if Path(path).suffix.lower() == ".tsv":
            if not Path(path).is_file():
                raise DataError(f"INPUT: {path!r} does not exist")
            with open(path, encoding="utf-8", errors="replace") as handle:
                header = handle.readline().lstrip("\ufeff").rstrip("\r\n").split("\t")
            labeled = self.info.layout.label_column in header
            skip = self.cfg.bad_rows == BadRows.skip
            return read_tsv(Path(path), self.info.layout, labeled, skip, datasets_cache)
        pair = TEXT_PAIR if len(self.info.layout.text_columns) == 2 else None
        return read_texts(path, (TEXT, pair), EncodingErrors.strict, datasets_cache)

    def description(self) -> str:
        origin = f"the Hub ({self.cfg.hub_name}, {self.cfg.task})"
        if self.cfg.glue_dir is not None:
            origin = str(Path(self.cfg.glue_dir) / self.info.folder)
        return f"GLUE {self.info.folder} from {origin}"

    def metric(self, predictions: np.ndarray, references: np.ndarray) -> Scores:
        return glue_scores(str(self.cfg.task), predictions, references)

    def prediction_files(self, split: str, decoded: Predictions) -> dict[str, str]:
        """Every split with each class's probability (dev splits beside their labels); test splits also in the
        GLUE server's submission format."""
        files = super().prediction_files(split, decoded)
        if split in self.info.submission:
            files[f"{self.info.submission[split]}.tsv"] = submission(self.info, decoded.values, self.rows[split])
        return files


def task_is_present(glue_dir: str | Path, task: GlueTask) -> bool:
    """Whether a GLUE folder holds the files a run on this task needs (training and evaluation)."""
    info = TASKS[task]
    folder = Path(glue_dir) / info.folder
    return all((folder / name).is_file() for name in ("train.tsv", *info.evaluation.values()))


# ---------------------------------------------------------------------------------------------- TSV


def read_tsv_layout(cfg: GlueDataConfig, info: GlueTaskInfo, datasets_cache: str) -> SentenceSplits:
    """The task's files from <glue_dir>/<Task>/: train and dev are required, test is predicted if there."""
    assert cfg.glue_dir is not None
    glue_dir = Path(cfg.glue_dir).expanduser()
    folder = glue_dir / info.folder
    if not folder.is_dir():
        raise DataError(
            f"GLUE {cfg.task}: folder {folder} does not exist (data.glue_dir={cfg.glue_dir} should hold "
            f"{info.folder}/train.tsv, as download_glue_data.py lays it out)"
        )
    skip = cfg.bad_rows == BadRows.skip
    skipped: dict[str, int] = {}

    def read(split: str, path: Path, labeled: bool) -> datasets.Dataset:
        if not path.is_file():
            raise DataError(f"GLUE {cfg.task}: {path} does not exist (the {split} split; data.glue_dir)")
        rows = read_tsv(path, info.layout, labeled, skip, datasets_cache)
        if skip and (count := count_bad_rows(path, info.layout, labeled)):
            skipped[split] = count
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
    return SentenceSplits(train=train, evaluation=evaluation, prediction=prediction, skipped_rows=skipped)


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
    what = f"GLUE {config_name} from the Hub ({cfg.hub_name})"
    offline = "Point data.glue_dir at GLUE in its original layout (make finetune-glue GLUE_DIR=/path/to/glue_data)"
    return load_hub(cfg.hub_name, config_name, datasets_cache, what, offline)


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


def submission(info: GlueTaskInfo, values: np.ndarray, rows: datasets.Dataset) -> str:
    """`index<TAB>prediction` with labels as GLUE writes them (STS-B scores clipped to [0, 5])."""
    if info.labels.is_regression:
        predicted = [f"{v:.3f}" for v in np.clip(values, 0.0, 5.0)]
    else:
        predicted = [info.label_values[i] for i in values]
    return tsv(["index", "prediction"], list(zip(rows[INDEX], predicted, strict=True)))
