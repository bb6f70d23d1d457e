"""Multiple choice: a question (with an optional context) and N candidate answers, one of them right.

Each choice is encoded with the question as a pair, `[CLS] context [SEP] question choice [SEP]` (SWAG: the
context sentence, then the start of the next one completed by the choice), or `[CLS] question [SEP] choice
[SEP]` without a context, and the model scores every pair; the highest scoring choice is the prediction.

Three ways to give the choices (data.*):
- one column per choice (`choice_columns=[ending0, ending1, ...]`: SWAG's CSV layout, and the Hub's allenai/swag);
- one column holding a list (`choices_column`: JSON/JSONL lists of strings, or of {"text", "label"} objects as
  ARC and OpenBookQA's JSONL have them);
- one column of lettered options packed in a string, `(A) ... (B) ...` (`choices_column`: OpenBookQA's TSV).
The answer (`answer_column`) is a 0-based index, a choice's label or letter, or the text of a choice. Nested
JSON fields are named with dots (`question.stem`). Every question must have the same number of choices; a row
that cannot be read that way names its file and line (or, with `data.bad_rows=skip`, is left out and counted).
A context too long for `max_seq_length` is cut from its start, so the question and the choice survive.
"""

from __future__ import annotations

import copy
import logging
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import datasets
import numpy as np
import torch
from scipy.special import softmax
from transformers import AutoModelForMultipleChoice, PreTrainedTokenizerBase

from bertkit.core.batch import Batch, Gathered, Scores
from bertkit.core.divergence import Distributions, OutputKind
from bertkit.core.errors import DataError
from bertkit.core.schema import input_path, require
from bertkit.core.seeding import fingerprint, tokenizer_fingerprint
from bertkit.core.task import Head, TaskData, TaskSpec
from bertkit.readers.files import load_hub, read_table_file, row_location
from bertkit.settings import ModelConfig
from bertkit.tasks.base import PREDICTED, CardFacts, Outputs, Prediction, Task
from bertkit.tasks.fine_tuning import (
    BadRows,
    FineTuningDataConfig,
    first_rows,
    map_processes,
    padding_on_the_right,
    tsv,
    warn_if_truncated,
)

log = logging.getLogger(__name__)
_FORMAT_VERSION = 1  # bump when the encoding changes, to retire old caches
INPUT_COLUMNS = ("input_ids", "token_type_ids", "attention_mask")
MODEL_COLUMNS = (*INPUT_COLUMNS, "labels")
ID, CONTEXT, QUESTION, CHOICES, CHOICE_LABELS, LABEL = "id", "context", "question", "choices", "choice_labels", "label"
"""The columns of a split's questions once read, whatever the layout of the file."""
_FILES = {"train": "train_file", "validation": "validation_file", "test": "test_file"}
_MARKER = re.compile(r"\(([A-Z])\)\s*")


@dataclass(kw_only=True, slots=True)
class MultipleChoiceDataConfig(FineTuningDataConfig):
    """Data recipe: questions with N candidate answers, from CSV/TSV/JSON/JSONL/parquet files or the Hub."""

    train_file: str | None = input_path(None)
    """None: the Hub's data.hub_name (network)."""
    validation_file: str | None = input_path(None)
    """None with a train_file: hold out data.validation_fraction of its questions (seeded)."""
    test_file: str | None = input_path(None)
    """Questions to predict (scored too when they have answers)."""
    hub_name: str = "allenai/swag"
    hub_config: str | None = "regular"
    context_column: str | None = None
    """Text that comes before the question (SWAG: sent1); None: the question stands alone."""
    question_column: str = "question"
    choices_column: str | None = None
    """One column holding all choices: a list, or lettered options packed in a string ("(A) ... (B) ...")."""
    choice_columns: list[str] = field(default_factory=list)
    """One column per choice (SWAG: [ending0, ..., ending3]); not read when data.choices_column is set."""
    answer_column: str = "label"
    """The right choice: a 0-based index, a label or letter (A, B, ...), or the choice's text."""
    id_column: str | None = None
    """Names each question in prediction files; None: its row number."""
    max_seq_length: int = 128
    """Tokens per choice (context, question and choice together); longer contexts are cut from the start."""
    validation_fraction: float = 0.1
    split_seed: int = 42
    """Seed of the held-out split, independent of the training seed so every seed sees the same split."""
    bad_rows: BadRows = BadRows.error
    """A row whose choices or answer cannot be read: stop naming file and line, or skip it and count it."""
    predict: bool = True
    """Predict data.test_file and write it under predictions/."""
    column_names: list[str] | None = None
    """Names of the columns of CSV/TSV files that have no header line (their first line is data)."""

    def __post_init__(self) -> None:
        require(self.max_seq_length >= 8, "data.max_seq_length", "must be >= 8")
        require(
            self.choices_column is not None or len(self.choice_columns) >= 2,
            "data.choice_columns",
            "give the choices as one column holding them all (data.choices_column=COLUMN) or as a column each "
            "(data.choice_columns=[...], at least two)",
        )
        require(0 < self.validation_fraction < 1, "data.validation_fraction", "must be in (0, 1)")
        require(
            self.train_file is not None or (self.validation_file is None and self.test_file is None),
            "data.train_file",
            "is needed with data.validation_file or data.test_file (without files, all splits come from the Hub)",
        )
        FineTuningDataConfig.__post_init__(self)


@dataclass(frozen=True)
class Choices:
    """One split's predictions: the chosen index per question, and the right one where known."""

    chosen: np.ndarray
    answers: np.ndarray | None
    probabilities: np.ndarray
    """Each choice's probability (softmax of the scores), one row per question."""


class MultipleChoiceTask(Task[MultipleChoiceDataConfig]):
    """The right answer among N, scored by accuracy."""

    compares_outputs = True

    questions: dict[str, datasets.Dataset]
    """Each split's questions as read (ids, texts, choices, labels), for prediction files."""

    @property
    def headline_metrics(self) -> tuple[str, ...]:
        return ("accuracy",)

    def build(self, tokenizer: PreTrainedTokenizerBase, cache_dir: Path) -> TaskData:
        splits, skipped, origin = read_splits(self.cfg, str(cache_dir / "datasets"))
        limits = {"train": self.cfg.max_train_samples}
        self.questions = {
            name: first_rows(rows, limits.get(name, self.cfg.max_eval_samples)) for name, rows in splits.items()
        }
        key = fingerprint(_FORMAT_VERSION, tokenizer_fingerprint(tokenizer), self.cfg.max_seq_length)
        encoded = {name: encode(rows, tokenizer, self.cfg, key) for name, rows in self.questions.items()}
        stats = {name: split_stats(rows, encoded[name], skipped.get(name, 0)) for name, rows in self.questions.items()}
        for name, numbers in stats.items():
            log.info("%s: %s", name, ", ".join(f"{k}={v}" for k, v in numbers.items()))
            warn_if_truncated(name, numbers["truncated_questions"], numbers["questions"], "questions",
                              f"data.max_seq_length={self.cfg.max_seq_length}")  # fmt: skip
        inputs = {
            name: ds.select_columns([c for c in MODEL_COLUMNS if c in ds.column_names]) for name, ds in encoded.items()
        }
        collate = ChoicePadding(tokenizer, self.cfg.pad_to_multiple_of)
        labeled_test = "test" in inputs and "labels" in inputs["test"].column_names
        return TaskData(
            spec=TaskSpec.of(tokenizer, self.cfg.max_seq_length),
            train=inputs["train"],
            evaluation={"validation": inputs["validation"]},
            final_evaluation={"test": inputs["test"]} if labeled_test else {},
            prediction={"test": inputs["test"]} if "test" in inputs and not labeled_test else {},
            collate_train=collate,
            collate_eval=collate,
            stats=stats,
            description=f"multiple choice from {origin}",
        )

    def head(self, model: ModelConfig) -> Head:
        return Head(model_class=AutoModelForMultipleChoice)

    def output_distributions(self, output: Outputs, batch: Batch) -> Distributions:
        return Distributions(OutputKind.categorical, output["logits"])

    def gather(self, batch: Batch, output: Any) -> dict[str, torch.Tensor]:
        gathered = {"logits": output.logits.float()}
        if "labels" in batch:
            gathered["labels"] = batch["labels"]
        return gathered

    def decode(self, split: str, gathered: Gathered) -> Choices:
        logits = gathered["logits"]
        probabilities = softmax(logits, axis=-1)
        return Choices(chosen=logits.argmax(axis=-1), answers=gathered.get("labels"), probabilities=probabilities)

    def predict_file(self, path: str, tokenizer: PreTrainedTokenizerBase, cache_dir: Path, top_k: int) -> Prediction:
        """Questions in any layout training reads (the same data.* column settings); answers, if there, kept."""
        rows = read_table_file(path, "INPUT", str(cache_dir / "datasets"), column_names=self.cfg.column_names).flatten()
        _check_columns(rows, self.cfg, path, needs_answer=False)
        questions = read_questions(rows, self.cfg, path, labeled=_has_answers(rows, self.cfg.answer_column))
        _check_choice_counts({PREDICTED: questions}, PREDICTED)
        self.questions = {PREDICTED: questions}
        key = fingerprint(_FORMAT_VERSION, tokenizer_fingerprint(tokenizer), self.cfg.max_seq_length)
        encoded = encode(questions, tokenizer, self.cfg, key)
        log.info("%s: %s", path, ", ".join(f"{k}={v}" for k, v in split_stats(questions, encoded, 0).items()))
        inputs = encoded.select_columns([c for c in MODEL_COLUMNS if c in encoded.column_names])
        return self.prediction(inputs, ChoicePadding(tokenizer, self.cfg.pad_to_multiple_of), len(questions))

    def prediction_records(self, split: str, decoded: Choices) -> list[dict[str, Any]]:
        """id, question, the chosen option's label and text, and every option's probability."""
        records = []
        for row, question in enumerate(self.questions[split]):
            chosen, labels = int(decoded.chosen[row]), question[CHOICE_LABELS]
            records.append({
                "id": question[ID], "question": question[QUESTION], "prediction": labels[chosen],
                "choice": question[CHOICES][chosen],
                "probabilities": dict(zip(labels, map(float, decoded.probabilities[row]), strict=True)),
            })  # fmt: skip
        return records

    def score(self, split: str, decoded: Choices) -> Scores:
        assert decoded.answers is not None, f"{split} has no answers to score"
        accuracy = float((decoded.chosen == decoded.answers).mean()) if len(decoded.answers) else math.nan
        return {"accuracy": accuracy, "examples": len(decoded.answers)}

    def prediction_files(self, split: str, decoded: Choices) -> dict[str, str]:
        """id, the chosen option's label and text, and the right one's where known (a TSV per split)."""
        header = ["id", "prediction", "choice"] + (["answer", "correct"] if decoded.answers is not None else [])
        table = []
        for row, question in enumerate(self.questions[split]):
            chosen = int(decoded.chosen[row])
            fields = [question[ID], question[CHOICE_LABELS][chosen], question[CHOICES][chosen]]
            if decoded.answers is not None:
                answer = int(decoded.answers[row])
                fields += [question[CHOICE_LABELS][answer], str(chosen == answer).lower()]
            table.append(fields)
        return {f"{split}.tsv": tsv(header, table)}

    def card(self) -> CardFacts:
        return CardFacts(pipeline_tag="multiple-choice", usage=_USAGE)


_USAGE = """from transformers import AutoModelForMultipleChoice, AutoTokenizer

tokenizer = AutoTokenizer.from_pretrained("path/to/this/folder")
model = AutoModelForMultipleChoice.from_pretrained("path/to/this/folder")
question, choices = "Plants need sunlight to", ["make food", "sleep", "sing", "melt"]
inputs = tokenizer([question] * len(choices), choices, padding=True, return_tensors="pt")
print(choices[model(**{name: value[None] for name, value in inputs.items()}).logits.argmax()])"""


# ------------------------------------------------------------------------------------------- reading


def read_splits(
    cfg: MultipleChoiceDataConfig, datasets_cache: str
) -> tuple[dict[str, datasets.Dataset], dict[str, int], str]:
    """Each split's questions in the columns above, the rows skipped per split, and where they came from."""
    raw, origin = _raw_splits(cfg, datasets_cache)
    splits, skipped = {}, {}
    for split, (rows, where) in raw.items():
        _check_columns(rows, cfg, where, needs_answer=split != "test")
        splits[split] = read_questions(rows, cfg, where, labeled=_has_answers(rows, cfg.answer_column))
        skipped[split] = len(rows) - len(splits[split])
    if "validation" not in splits:
        parts = splits["train"].train_test_split(test_size=cfg.validation_fraction, seed=cfg.split_seed)
        splits["train"], splits["validation"] = parts["train"], parts["test"]
    _check_choice_counts(splits)
    return splits, {name: count for name, count in skipped.items() if count}, origin


def _raw_splits(cfg: MultipleChoiceDataConfig, datasets_cache: str) -> tuple[dict[str, tuple[Any, str]], str]:
    """Each split's rows as stored (nested JSON fields flattened to "question.stem"), and what names them."""
    wanted = {split: attribute for split, attribute in _FILES.items() if split != "test" or cfg.predict}
    if cfg.train_file is None:
        loaded = _load_hub(cfg, datasets_cache)
        found = {split: loaded[split].flatten() for split in wanted if split in loaded}
        return {split: (rows, f"{cfg.hub_name} {split}") for split, rows in found.items()}, f"the Hub ({cfg.hub_name})"
    raw = {}
    for split, attribute in wanted.items():
        path = getattr(cfg, attribute)
        if path is not None:
            rows = read_table_file(path, f"data.{attribute}", datasets_cache, column_names=cfg.column_names)
            raw[split] = (rows.flatten(), path)
    return raw, cfg.train_file


def _load_hub(cfg: MultipleChoiceDataConfig, datasets_cache: str) -> datasets.DatasetDict:
    offline = "Set data.train_file (and data.validation_file) to files, e.g. SWAG's train.csv and val.csv"
    return load_hub(cfg.hub_name, cfg.hub_config, datasets_cache, f"{cfg.hub_name} from the Hub", offline)


def _check_columns(rows: datasets.Dataset, cfg: MultipleChoiceDataConfig, where: str, needs_answer: bool) -> None:
    wanted: dict[str, str | None] = {
        "data.question_column": cfg.question_column,
        "data.context_column": cfg.context_column,
        "data.choices_column": cfg.choices_column,
        "data.id_column": cfg.id_column,
        "data.answer_column": cfg.answer_column if needs_answer else None,
    }
    if cfg.choices_column is None:
        wanted |= {f"data.choice_columns[{i}]": column for i, column in enumerate(cfg.choice_columns)}
    for setting, column in wanted.items():
        if column is not None and column not in rows.column_names:
            raise DataError(f"{where}: no column {column!r} ({setting}); the columns are {rows.column_names}")


def _has_answers(rows: datasets.Dataset, column: str) -> bool:
    """Whether a split has answers to score: the column, with any answer not hidden (SWAG's test split has -1)."""
    if column not in rows.column_names:
        return False
    return any(answer is not None and not (isinstance(answer, int | float) and answer < 0) for answer in rows[column])


def read_questions(
    rows: datasets.Dataset, cfg: MultipleChoiceDataConfig, where: str, labeled: bool
) -> datasets.Dataset:
    """Rows in the file's layout -> questions (id, context, question, choices, their labels, answer), cached;
    a row that cannot be read stops the run naming its line, or is left out (data.bad_rows=skip)."""
    features = {
        ID: datasets.Value("string"),
        CONTEXT: datasets.Value("string"),
        QUESTION: datasets.Value("string"),
        CHOICES: datasets.List(datasets.Value("string")),
        CHOICE_LABELS: datasets.List(datasets.Value("string")),
    }
    if labeled:
        features[LABEL] = datasets.Value("int64")

    def convert(batch: dict[str, list], indices: list[int]) -> dict[str, list]:
        out: dict[str, list] = {name: [] for name in features}
        for offset, index in enumerate(indices):
            try:
                question = _question({name: values[offset] for name, values in batch.items()}, index, cfg, labeled)
            except _BadRow as problem:
                if cfg.bad_rows == BadRows.error:
                    raise DataError(
                        f"{where}: {row_location(where, index)}: {problem} (data.bad_rows=skip leaves such rows out)"
                    ) from None
                continue
            for name in features:
                out[name].append(question[name])
        return out

    questions = rows.map(convert, batched=True, with_indices=True, remove_columns=rows.column_names,
                         features=datasets.Features(features), desc="Reading questions")  # fmt: skip
    if len(questions) == 0:
        raise DataError(f"{where}: no question could be read")
    return questions


class _BadRow(Exception):
    """A row whose choices or answer cannot be read."""


def _question(row: dict[str, Any], index: int, cfg: MultipleChoiceDataConfig, labeled: bool) -> dict[str, Any]:
    choices, labels = _choices(row, cfg)
    if any(not text for text in choices):
        raise _BadRow("a choice is empty")
    question: dict[str, Any] = {
        ID: str(row[cfg.id_column]) if cfg.id_column else str(index),
        CONTEXT: _text(row, cfg.context_column) if cfg.context_column else "",
        QUESTION: _text(row, cfg.question_column),
        CHOICES: choices,
        CHOICE_LABELS: labels,
    }
    if labeled:
        question[LABEL] = _answer(row.get(cfg.answer_column), choices, labels, cfg.answer_column)
    return question


def _text(row: dict[str, Any], column: str) -> str:
    value = row[column]
    if value is None:
        raise _BadRow(f"column {column!r} is empty")
    return str(value).strip()


def _choices(row: dict[str, Any], cfg: MultipleChoiceDataConfig) -> tuple[list[str], list[str]]:
    """The choices' texts and labels (A, B, ... where the data names none)."""
    if cfg.choices_column is None:
        texts = [_text(row, column) for column in cfg.choice_columns]
        return texts, [chr(ord("A") + i) for i in range(len(texts))]
    value = row[cfg.choices_column]
    if isinstance(value, str):
        return _lettered(value)
    if isinstance(value, dict) and "text" in value:  # a list of objects, as Arrow stores it: columns of lists
        texts = [str(text).strip() for text in value["text"]]
        names = value.get("label") or [chr(ord("A") + i) for i in range(len(texts))]
        return texts, [str(name) for name in names]
    if isinstance(value, list):
        texts = [str(item["text"] if isinstance(item, dict) else item).strip() for item in value]
        names = [str(item.get("label", chr(ord("A") + i))) if isinstance(item, dict) else chr(ord("A") + i)
                 for i, item in enumerate(value)]  # fmt: skip
        return texts, names
    raise _BadRow(f"column {cfg.choices_column!r} holds {type(value).__name__}, not a list or lettered options")


def _lettered(packed: str) -> tuple[list[str], list[str]]:
    """ "(A) one (B) two" -> (["one", "two"], ["A", "B"]); the letters must run A, B, C, ... once each."""
    parts = _MARKER.split(packed.strip())
    if parts[0].strip() or len(parts) < 5:
        raise _BadRow(f"{packed[:60]!r} is not lettered options like '(A) ... (B) ...'")
    letters, texts = parts[1::2], [text.strip() for text in parts[2::2]]
    expected = [chr(ord("A") + i) for i in range(len(letters))]
    if letters != expected:
        raise _BadRow(f"the options are lettered {', '.join(letters)}, not {', '.join(expected)}")
    return texts, letters


def _answer(value: Any, choices: list[str], labels: list[str], column: str) -> int:
    """The right choice's index, from an index, a label or letter, or a choice's text."""
    if isinstance(value, float) and value.is_integer():  # an integer column with a gap is read as floats
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise _BadRow(f"the answer ({column!r}) is {value!r}")
    if isinstance(value, int):
        index = value
    else:
        index = _answer_index(value.strip(), choices, labels, column)
    if not 0 <= index < len(choices):
        raise _BadRow(f"the answer {value!r} ({column!r}) points past the {len(choices)} choices")
    return index


def _answer_index(text: str, choices: list[str], labels: list[str], column: str) -> int:
    """A label first (A, B, ... or the data's own), then a choice's text, a letter, a digit string."""
    if text in labels:
        return labels.index(text)
    if text in choices:
        return choices.index(text)
    if len(text) == 1 and "A" <= text <= "Z":
        return ord(text) - ord("A")
    if text.isdigit():
        return int(text)
    raise _BadRow(f"the answer {text!r} ({column!r}) is no choice's index, label or text")


def _check_choice_counts(splits: dict[str, datasets.Dataset], first: str = "train") -> None:
    """Every question of every split must have as many choices as the first question of split `first`."""
    expected = len(splits[first][0][CHOICES])
    which = "training" if first == "train" else first
    for name, rows in splits.items():
        counts = [len(choices) for choices in rows[CHOICES]]
        odd = next((i for i, count in enumerate(counts) if count != expected), None)
        if odd is not None:
            raise DataError(
                f"{name} split: question {rows[odd][ID]} has {counts[odd]} choices where the first {which} "
                f"question has {expected}; every question needs the same number"
            )


# ------------------------------------------------------------------------------------------ encoding


def encode(
    questions: datasets.Dataset, tokenizer: PreTrainedTokenizerBase, cfg: MultipleChoiceDataConfig, key: str
) -> datasets.Dataset:
    """Token ids of every choice of every question, one row per question ([choices][tokens]); a context (or,
    without one, a question) too long is cut from its start, and `truncated_tokens` counts what was cut."""
    cut_front = copy.deepcopy(tokenizer)
    cut_front.truncation_side = "left"
    limit = cfg.max_seq_length

    def tokenize(batch: dict[str, list]) -> dict[str, list]:
        firsts, seconds = _pairs(batch)
        encoded = tokenizer(firsts, seconds, return_attention_mask=True, verbose=False)
        lengths = [len(ids) for ids in encoded["input_ids"]]
        long = [i for i, length in enumerate(lengths) if length > limit]
        if long:
            _truncate(encoded, long, firsts, seconds, tokenizer, cut_front, limit)
        out = _regroup(encoded, lengths, len(batch[CHOICES][0]), limit)
        if LABEL in batch:
            out["labels"] = batch[LABEL]
        return out

    return questions.map(
        tokenize,
        batched=True,
        num_proc=map_processes(cfg, len(questions)),
        remove_columns=questions.column_names,
        new_fingerprint=fingerprint(questions._fingerprint, key),
        desc="Tokenizing choices",
    )


def _pairs(batch: dict[str, list]) -> tuple[list[str], list[str]]:
    """(first, second) texts of every choice of every question in the batch, question by question."""
    firsts, seconds = [], []
    for context, question, choices in zip(batch[CONTEXT], batch[QUESTION], batch[CHOICES], strict=True):
        for choice in choices:
            firsts.append(context or question)
            seconds.append(f"{question} {choice}" if context else choice)
    return firsts, seconds


def _truncate(encoded, long: list[int], firsts, seconds, tokenizer, cut_front, limit: int) -> None:
    """Re-encode the pairs longer than `limit`: the first text cut from its start; a second text that alone
    leaves no room for the first is cut from its end too (longest first)."""
    room = limit - tokenizer.num_special_tokens_to_add(pair=True)
    second_lengths = [len(ids) for ids in tokenizer([seconds[i] for i in long], add_special_tokens=False)["input_ids"]]
    front = [i for i, length in zip(long, second_lengths, strict=True) if length < room]
    both = [i for i, length in zip(long, second_lengths, strict=True) if length >= room]
    for chosen, encoder, strategy in ((front, cut_front, "only_first"), (both, tokenizer, "longest_first")):
        if chosen:
            cut = encoder([firsts[i] for i in chosen], [seconds[i] for i in chosen], truncation=strategy,
                          max_length=limit, return_attention_mask=True)  # fmt: skip
            for name in encoded:
                for j, i in enumerate(chosen):
                    encoded[name][i] = cut[name][j]


def _regroup(encoded, lengths: list[int], choices: int, limit: int) -> dict[str, list]:
    """Flat (question, choice) encodings -> one row per question; truncated tokens summed over its choices."""
    out: dict[str, list] = {}
    for name in INPUT_COLUMNS:
        if name in encoded:
            values = encoded[name]
            out[name] = [values[start : start + choices] for start in range(0, len(values), choices)]
    over = [max(0, length - limit) for length in lengths]
    out["truncated_tokens"] = [sum(over[start : start + choices]) for start in range(0, len(over), choices)]
    out["tokens"] = [sum(min(length, limit) for length in lengths[start : start + choices])
                     for start in range(0, len(lengths), choices)]  # fmt: skip
    return out


def split_stats(questions: datasets.Dataset, encoded: datasets.Dataset, skipped: int) -> dict[str, Any]:
    """Questions, choices, tokens, truncation and the answer positions of one split."""
    truncated = np.asarray(encoded["truncated_tokens"])
    choices = len(questions[0][CHOICES]) if len(questions) else 0
    stats: dict[str, Any] = {
        "questions": len(questions),
        "choices": choices,
        "mean_tokens_per_choice": float(np.mean(encoded["tokens"]) / max(1, choices)) if len(encoded) else 0.0,
        "truncated_questions": int((truncated > 0).sum()),
        "truncated_tokens": int(truncated.sum()),
    }
    if LABEL in questions.column_names:
        counts = np.bincount(np.asarray(questions[LABEL], dtype=np.int64), minlength=choices)
        stats["answer_counts"] = {str(i): int(count) for i, count in enumerate(counts)}
    if skipped:
        stats["skipped_malformed_rows"] = skipped
    return stats


class ChoicePadding:
    """Pads every choice of every question of a batch to the longest one (rounded up to a multiple), as a
    [questions, choices, tokens] batch; other columns are dropped."""

    def __init__(self, tokenizer: PreTrainedTokenizerBase, pad_to_multiple_of: int | None) -> None:
        self.tokenizer = padding_on_the_right(tokenizer)
        self.pad_to_multiple_of = pad_to_multiple_of

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        choices = len(features[0]["input_ids"])
        inputs = [name for name in INPUT_COLUMNS if name in features[0]]
        flat = [{name: feature[name][i] for name in inputs} for feature in features for i in range(choices)]
        padded = self.tokenizer.pad(flat, pad_to_multiple_of=self.pad_to_multiple_of, return_tensors="pt")
        batch = {name: tensor.view(len(features), choices, -1) for name, tensor in padded.items()}
        if "labels" in features[0]:
            batch["labels"] = torch.tensor([feature["labels"] for feature in features], dtype=torch.long)
        return batch
